/** The image of the ESP32-DevKitC board (boards/sentinel_esp32_devkitc.board.json): the firmware with the SHTC3 and BME680 drivers. */
import { runFirmware } from "../firmware"
import { bme680 } from "../sensors/bme680"
import { driverPorts } from "../sensors/drivers"
import { shtc3 } from "../sensors/sht"
import { TRUST_ANCHOR } from "../update/trust-anchor"

await runFirmware(driverPorts({ shtc3: shtc3, bme680: bme680 }), TRUST_ANCHOR)
