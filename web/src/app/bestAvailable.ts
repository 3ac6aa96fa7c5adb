// "Best available": ask the server for N adjacent seats instead of picking them on the map
// (SPEC §5, `POST /api/events/{id}/holds` with `{"best_available": …}`). The server chooses and
// holds them in one decision; this module shapes the request and words its failures.

import { sectionName } from '../shared/format';
import { ApiError, describeError } from '../shared/http';
import type { BestAvailableRequest, EventDetail } from '../shared/types';

/** The request body: only the filters the user set. */
export function bestAvailableBody(request: BestAvailableRequest): { best_available: BestAvailableRequest } {
  const body: BestAvailableRequest = { count: request.count };
  if (request.tier !== undefined) body.tier = request.tier;
  if (request.section !== undefined && request.section !== '') body.section = request.section;
  if (request.accessible) body.accessible = true;
  return { best_available: body };
}

/** "in Stalls, Premium, wheelchair accessible": the filters, for messages. */
export function whereWords(event: EventDetail | null, request: BestAvailableRequest): string {
  const parts: string[] = [];
  if (request.section) parts.push(`in ${sectionName(request.section)}`);
  if (request.tier !== undefined) {
    const tier = event?.tiers.find((t) => t.id === request.tier);
    if (tier) parts.push(`at ${tier.name} price`);
  }
  if (request.accessible) parts.push('with wheelchair access');
  return parts.join(', ');
}

/** Whether the server refused the body because it does not know `best_available` at all. */
function notSupported(error: ApiError): boolean {
  if (error.status !== 422 || error.kind !== 'validation') return false;
  const mentions = (text: unknown) => typeof text === 'string' && text.includes('best_available');
  return (error.problem.errors ?? []).some((e) => e.loc.some(mentions) || mentions(e.msg)) || mentions(error.problem.detail);
}

/** What to tell the user when a best-available hold failed. */
export function bestAvailableFailure(error: unknown, event: EventDetail | null, request: BestAvailableRequest): string {
  if (error instanceof ApiError) {
    // 409 `no_block`: no block of that size is left (a 409 `conflict` is another story: the
    // seats kept being taken while the server tried, and its own words say so).
    if (error.status === 409 && error.kind === 'no_block') {
      const where = whereWords(event, request);
      const seats = request.count === 1 ? 'No seat is' : `No ${request.count} seats side by side are`;
      const narrower = request.section || request.tier !== undefined || request.accessible;
      return `${seats} left${where ? ` ${where}` : ''}. Try ${request.count > 1 ? 'fewer seats' : 'again later'}${narrower ? ', another section or price' : ''}, or pick seats on the map.`;
    }
    if (notSupported(error)) return 'This server does not offer best available yet: please pick your seats on the map.';
  }
  return describeError(error);
}
