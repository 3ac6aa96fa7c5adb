// Seats in words and prices, from the event's own layout (a seat id is an opaque key: it is never
// shown to a user), and the messages about the user's seats.

import { money, sectionName } from '../shared/format';
import type { EventDetail, Tier } from '../shared/types';

export interface SeatInfo {
  section: string;
  row: string;
  number: number;
  tierId: number;
  accessible: boolean;
}

const indexes = new WeakMap<EventDetail, Map<string, SeatInfo>>();

/** seat id → where it is and its tier, built once per loaded event (layouts reach 100,000 seats). */
export function seatIndex(event: EventDetail): Map<string, SeatInfo> {
  let index = indexes.get(event);
  if (!index) {
    index = new Map();
    for (const section of event.layout.sections) {
      for (const row of section.rows) {
        for (const seat of row.seats) {
          index.set(seat.id, {
            section: section.name,
            row: row.name,
            number: seat.number,
            tierId: seat.tier_id,
            accessible: seat.accessible === true,
          });
        }
      }
    }
    indexes.set(event, index);
  }
  return index;
}

/** "Stalls row A seat 12"; a seat the layout does not know is just "a seat". */
export function seatWords(event: EventDetail | null, seatId: string): string {
  const info = event ? seatIndex(event).get(seatId) : undefined;
  return info ? `${sectionName(info.section)} row ${info.row} seat ${info.number}` : 'a seat';
}

export function tierOf(event: EventDetail, seatId: string): Tier | undefined {
  const info = seatIndex(event).get(seatId);
  return info ? event.tiers.find((t) => t.id === info.tierId) : undefined;
}

/** The price of these seats together, in the event's currency. */
export function totalOf(event: EventDetail, seatIds: readonly string[]): { cents: number; text: string } {
  const cents = seatIds.reduce((sum, id) => sum + (tierOf(event, id)?.price_cents ?? 0), 0);
  return { cents, text: money(cents, event.tiers[0]?.currency ?? 'EUR') };
}

/** "Stalls row A seat 3", "Stalls row A seat 3 and Circle row B seat 1", "…, … and …". */
export function listInWords(event: EventDetail | null, seatIds: readonly string[]): string {
  const names = seatIds.map((id) => seatWords(event, id));
  if (names.length <= 1) return names[0] ?? '';
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/** The message for picked seats that someone else took (a 409, a delta, a reconnect). */
export function takenMessage(event: EventDetail | null, seatIds: readonly string[]): string {
  const names = listInWords(event, seatIds);
  return seatIds.length === 1
    ? `${names} was just taken — please pick another seat.`
    : `${names} were just taken — please pick other seats.`;
}
