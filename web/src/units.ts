// Sizes, durations and token amounts for people (as px-sdk's human_bytes/human_duration).

export function humanBytes(n: bigint | number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let v = Number(n)
  let i = 0
  while (v >= 1024 && i + 1 < units.length) {
    v /= 1024
    i++
  }
  return i === 0 ? `${Number(n)} B` : `${v.toFixed(1)} ${units[i]}`
}

export function humanDuration(secs: number): string {
  const s = Math.max(0, Math.floor(secs))
  const [n, unit] =
    s >= 2 * 86400
      ? [Math.floor(s / 86400), 'day']
      : s >= 2 * 3600
        ? [Math.floor(s / 3600), 'hour']
        : s >= 2 * 60
          ? [Math.floor(s / 60), 'minute']
          : [s, 'second']
  return `${n} ${unit}${n === 1 ? '' : 's'}`
}

/** An 18-decimals amount, trimmed: 100000000000000000000n -> "100". */
export function formatAmount(v: bigint, decimals = 18): string {
  const base = 10n ** BigInt(decimals)
  const whole = v / base
  const frac = (v % base).toString().padStart(decimals, '0').replace(/0+$/, '').slice(0, 6)
  return frac ? `${whole}.${frac}` : `${whole}`
}

export function date(unix: number): string {
  return new Date(unix * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')
}
