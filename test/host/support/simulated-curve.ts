/** Shared by the host suites that check readings from the simulated sensors. */

/** The curve of src/sensors/simulated.ts, written again from its specification. */
export function curve(quantity: string, n: number): number {
    const tri = (k: number, p: number) => (k % p <= p / 2 ? k % p : p - (k % p))
    switch (quantity) {
        case "temperature":
            return 20 + tri(n, 24) * 0.25
        case "humidity":
            return 40 + tri(n + 6, 40) * 0.5
        case "pressure":
            return 101300 + tri(n, 30) * 10
        case "gas":
            return 50000 + tri(n, 16) * 1000
    }
    throw new Error(quantity)
}
