/**
 * Preloaded (`node --require`) into a DeviceScript simulator whose process
 * the tests kill as a power cut: makes the save of its flash file atomic.
 *
 * `devs vm` and `devs run` keep the simulated flash in
 * `.devicescript/flash/sim.bin` and save the whole image with
 * `fs.writeFileSync` after flash operations. writeFileSync truncates the file
 * first, so a kill in the middle of a save leaves it short or empty, and the
 * next boot finds blank flash: no program, no identity, no settings, no
 * update window. Measured here: of 17 kills of a program writing settings in
 * a loop, 2 left a 0-byte sim.bin (0 of 30 with this preload), and an OTA
 * power cut left a device that never booted again. A real flash chip loses
 * at most the page being written, which the runtime's store is built to
 * survive; losing the whole chip is an artefact of the simulator, not a
 * behaviour of the device.
 *
 * Writing a temporary file and renaming it over sim.bin keeps the old image
 * or the new one, so a kill falls between two flash operations. (CommonJS:
 * the CLI is a CommonJS bundle, and `--require` runs before its first line.)
 */
"use strict"
const fs = require("node:fs")
const path = require("node:path")

const FLASH_FILE = "sim.bin"
const writeFileSync = fs.writeFileSync

fs.writeFileSync = function atomicFlashWrite(file, data, options) {
    if (typeof file !== "string" || path.basename(file) !== FLASH_FILE) return writeFileSync.apply(this, arguments)
    const temporary = `${file}.${process.pid}.tmp`
    writeFileSync(temporary, data, options)
    fs.renameSync(temporary, file)
}
