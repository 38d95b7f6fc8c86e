/**
 * Sensor faults in the security event log. A part that stops answering or
 * reads out of range may be failing or tampered with, so its faults are
 * events; but a broken part faults at every read, so each sensor's faults
 * reach the log at most once per interval (flash wear, log flooding). Every
 * fault is printed, and the batcher counts them all.
 */
import * as ds from "@devicescript/core"
import { EventLog } from "../events/log"
import { SensorFault } from "../sensors/types"

/** A fault handler for the pipeline that records a sensor's faults in `events` at most once per `minIntervalMs`. */
export function faultLogger(events: EventLog, minIntervalMs: number): (fault: SensorFault) => Promise<void> {
    const lastRecorded: { [sensor: string]: number } = {}
    return async (f: SensorFault) => {
        console.log(`sensor fault: ${f.sensor} ${f.kind}: ${f.detail}`)
        const last = lastRecorded[f.sensor]
        if (last !== undefined && ds.millis() - last < minIntervalMs) return
        lastRecorded[f.sensor] = ds.millis()
        await events.record("sensor-fault", `${f.sensor} ${f.kind}: ${f.detail}`)
    }
}
