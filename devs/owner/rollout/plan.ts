/**
 * What a new release would reach: the owner's devices grouped by the
 * sequence their last state report names, and the `npm run rollout` command
 * that offers it to those that can take it. A device takes a release only
 * above its own sequence (its anti-rollback counter) and at or above the
 * release's lowest sequence to update from (src/update/updater.ts), so the
 * others are named apart rather than offered something they must refuse.
 */

/** A device as the owner service's `GET /api/devices` lists it (the fields the plan reads). */
export interface ListedDevice {
    id: string
    name: string | null
    /** The sequence of the release it runs, from its state report; null before its first report. */
    sequence: number | null
}

/** A published release. */
export interface PlannedRelease {
    digest: string
    sequence: number
    minSequence: number
}

/** Devices of one kind in the plan. */
export interface PlanGroup {
    /** The sequence they run, or null when they have not said. */
    sequence: number | null
    devices: ListedDevice[]
}

/** Who can take the release, who cannot, who has not said, and the rollout command for those who can. */
export interface RolloutPlan {
    canTake: PlanGroup[]
    current: PlanGroup[]
    tooOld: PlanGroup[]
    unknown: ListedDevice[]
    /** The exact command line that offers the release to every device that can take it; undefined when none can. */
    command: string | undefined
}

function bySequence(devices: ListedDevice[]): PlanGroup[] {
    const groups = new Map<number, ListedDevice[]>()
    for (const d of devices) groups.set(d.sequence!, [...(groups.get(d.sequence!) ?? []), d])
    return [...groups.entries()].sort(([a], [b]) => a - b).map(([sequence, list]) => ({ sequence, devices: list }))
}

/** The plan for `release` over the owner's `devices`. */
export function planRollout(release: PlannedRelease, devices: ListedDevice[]): RolloutPlan {
    const reported = devices.filter(d => d.sequence !== null)
    const takers = reported.filter(d => d.sequence! < release.sequence && d.sequence! >= release.minSequence)
    const base = `npm run rollout -- create --digest ${release.digest} --sequence ${release.sequence}`
    // the whole fleet when every device can take it (devices heard later join an active rollout), else the list
    const command =
        takers.length === 0 ? undefined : takers.length === devices.length ? base : `${base} --cohort ${takers.map(d => d.id).join(",")}`
    return {
        canTake: bySequence(takers),
        current: bySequence(reported.filter(d => d.sequence! >= release.sequence)),
        tooOld: bySequence(reported.filter(d => d.sequence! < release.minSequence)),
        unknown: devices.filter(d => d.sequence === null),
        command,
    }
}

const count = (n: number) => (n === 1 ? "1 device runs" : `${n} devices run`)
const names = (devices: ListedDevice[]) => devices.map(d => (d.name ? `${d.name} (${d.id})` : d.id)).join(", ")

/** The plan as the lines `npm run release` prints. */
export function describePlan(release: PlannedRelease, plan: RolloutPlan): string[] {
    const lines: string[] = []
    for (const g of plan.canTake)
        lines.push(`${count(g.devices.length)} sequence ${g.sequence} and can take ${release.sequence}: ${names(g.devices)}`)
    for (const g of plan.current)
        lines.push(
            `${count(g.devices.length)} sequence ${g.sequence}, not below ${release.sequence}, and will not take it: ${names(g.devices)}`
        )
    for (const g of plan.tooOld)
        lines.push(
            `${count(g.devices.length)} sequence ${g.sequence}, below the lowest this release updates from ` +
                `(${release.minSequence}): ${names(g.devices)}`
        )
    if (plan.unknown.length)
        lines.push(
            `${plan.unknown.length === 1 ? "1 device has" : `${plan.unknown.length} devices have`} not reported its sequence yet: ` +
                names(plan.unknown)
        )
    lines.push(plan.command ? `roll it out: ${plan.command}` : "no device of the owner can take it yet: nothing to roll out")
    return lines
}
