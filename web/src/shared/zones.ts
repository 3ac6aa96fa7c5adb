// IANA time zones: which names this browser knows, and wall-clock times in a zone ↔ instants
// (pure, on Intl's offsets: no zone data of our own). An event's times are its venue's wall
// clock ("20:00 in Berlin"), whatever zone the browser showing them sits in.

const formats = new Map<string, Intl.DateTimeFormat>();

/** A formatter of an instant's wall-clock fields in `timeZone`; throws RangeError for a zone
 *  the browser does not know. */
function wallFormat(timeZone: string): Intl.DateTimeFormat {
  let format = formats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formats.set(timeZone, format);
  }
  return format;
}

/** Whether `timeZone` is a zone name this browser can show times in ("Europe/Berlin", "UTC"). */
export function isKnownZone(timeZone: string | null | undefined): timeZone is string {
  if (!timeZone) return false;
  try {
    wallFormat(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The browser's own zone ("Europe/London"), as Intl resolves it. */
export function browserZone(): string {
  return new Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** The zones to choose from: Intl's list (which leaves out "UTC"), "UTC", and the browser's
 *  own zone (which may be an alias missing from the list, such as "Asia/Calcutta"), sorted. */
export function zoneChoices(): string[] {
  const listed = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  return [...new Set([...listed, 'UTC', browserZone()])].sort();
}

/** The wall-clock time of `epochMs` in `timeZone`, as milliseconds of the same fields read as
 *  UTC (so that the zone's offset is this minus the instant). */
function wallMs(epochMs: number, timeZone: string): number {
  const fields: Record<string, number> = {};
  for (const part of wallFormat(timeZone).formatToParts(new Date(epochMs))) {
    if (part.type !== 'literal') fields[part.type] = Number(part.value);
  }
  const { year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0 } = fields;
  return Date.UTC(year, month - 1, day, hour, minute, second);
}

/** The zone's offset from UTC at `epochMs`, in milliseconds (Berlin in summer: +7,200,000). */
export function zoneOffsetMs(epochMs: number, timeZone: string): number {
  const whole = epochMs - (((epochMs % 1000) + 1000) % 1000);
  return wallMs(whole, timeZone) - whole;
}

/** The `<input type="datetime-local">` value ("2026-06-06T19:00") of `instant` in `timeZone`. */
export function utcToZonedWallTime(instant: Date | string, timeZone: string): string {
  const date = typeof instant === 'string' ? new Date(instant) : instant;
  if (Number.isNaN(date.getTime())) throw new RangeError(`not an instant: ${String(instant)}`);
  return new Date(wallMs(date.getTime(), timeZone)).toISOString().slice(0, 16);
}

const WALL = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/;
const DAY_MS = 86_400_000;

/**
 * The UTC instant (RFC 3339, "2026-06-06T17:00:00.000Z") at which the wall clocks of
 * `timeZone` show `wall` ("2026-06-06T19:00", a datetime-local value). Throws RangeError for a
 * value that is not such a time or a zone the browser does not know.
 *
 * Around a change of offset (daylight saving time) a wall time may happen twice or never; as
 * Temporal's default (`disambiguation: "compatible"`) and RFC 5545 do, a repeated time is its
 * first occurrence and a skipped one is read with the offset before the change, so that it
 * lands as far past the gap's start as it was typed: 02:30 on the night Berlin springs forward
 * is 03:30 CEST.
 */
export function zonedWallTimeToUtc(wall: string, timeZone: string): string {
  const match = WALL.exec(wall);
  if (!match) throw new RangeError(`not a wall-clock time: ${wall}`);
  const [, y, mo, d, h, mi, s] = match.map(Number) as number[];
  const naive = Date.UTC(y ?? 0, (mo ?? 1) - 1, d ?? 1, h ?? 0, mi ?? 0, s || 0);
  // The fields must be a real date and time (Date.UTC rolls 30 February over into March).
  if (Number.isNaN(naive) || new Date(naive).toISOString().slice(0, wall.length) !== wall) {
    throw new RangeError(`not a wall-clock time: ${wall}`);
  }
  // Zones change their offset at most once in any two days: the offsets a day either side are
  // the only ones this wall time can be read with.
  const before = zoneOffsetMs(naive - DAY_MS, timeZone);
  const after = zoneOffsetMs(naive + DAY_MS, timeZone);
  const readings = [naive - before, naive - after].filter((at) => wallMs(at, timeZone) === naive);
  const at = readings.length > 0 ? Math.min(...readings) : naive - before;
  return new Date(at).toISOString();
}
