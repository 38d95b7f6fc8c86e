/** The image of the Seeed XIAO ESP32-C3 board (boards/sentinel_xiao_esp32c3.board.json): the firmware with the SHT30 and AHT20 drivers. */
import { runFirmware } from "../firmware"
import { aht20 } from "../sensors/aht20"
import { driverPorts } from "../sensors/drivers"
import { sht30 } from "../sensors/sht"
import { TRUST_ANCHOR } from "../update/trust-anchor"

await runFirmware(driverPorts({ sht30: sht30, aht20: aht20 }), TRUST_ANCHOR)
