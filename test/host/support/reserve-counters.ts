/**
 * A second process for the owner store tests: opens the store given as the
 * first argument and reserves down-counter blocks for a device, printing each
 * counter it may send as it takes it, so a test can run several at once or
 * kill one in the middle of a block.
 *
 *   node --import tsx test/host/support/reserve-counters.ts <store> <device id> <blocks> [<pause ms>]
 */
import { OwnerStore } from "../../../devs/owner/store.ts"
import { DOWN_COUNTER_BLOCK } from "../../../devs/owner/service.ts"

const [path, id, blocks, pause] = process.argv.slice(2)
const store = new OwnerStore(path)
for (let b = 0; b < Number(blocks); b++) {
    const { first, last } = store.reserveDownCounters(id, DOWN_COUNTER_BLOCK)
    for (let c = first; c <= last; c++) {
        process.stdout.write(`${c}\n`)
        if (pause) await new Promise(r => setTimeout(r, Number(pause)))
    }
}
store.close()
