// One fetch wrapper for the REST API: JSON in and out, RFC 9457 problems turned into ApiError.

import type { Problem } from './types';

/** An answer that is not 2xx, carrying the server's problem details (or a stand-in). */
export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title ?? `request failed (${problem.status})`);
    this.name = 'ApiError';
  }

  get status(): number {
    return this.problem.status;
  }

  get kind(): string | undefined {
    return this.problem.kind;
  }
}

export interface RequestOptions {
  body?: unknown;
  token?: string | null;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Give up after this long without an answer (a network that stopped forwarding never
   *  answers, and a button must not say "Holding…" forever). */
  timeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 20_000;

/** Kind of the problem standing in for a request that got no answer at all (status 0). */
export const NETWORK = 'network';

/** A problem standing in for a network failure (no answer at all): status 0. */
function networkProblem(error: unknown, timedOut: number | null): Problem {
  const offline = typeof navigator !== 'undefined' && navigator.onLine === false;
  let detail: string;
  if (offline) detail = 'You are offline. This will work again once your connection is back.';
  else if (timedOut !== null) detail = `The server did not answer within ${Math.round(timedOut / 1000)} s. Check your connection and try again.`;
  else detail = `Could not reach the server (${error instanceof Error ? error.message : String(error)}). Check your connection and try again.`;
  return { status: 0, kind: NETWORK, title: 'Network error', detail };
}

const unanswered = new Set<() => void>();

/** Call `listener` whenever a request gets no answer (the live connection's status hears it). */
export function onUnanswered(listener: () => void): () => void {
  unanswered.add(listener);
  return () => unanswered.delete(listener);
}

async function readProblem(response: Response): Promise<Problem> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as Partial<Problem>;
    if (body && typeof body === 'object') return { ...body, status: response.status };
  } catch {
    // not JSON: an HTML error page from a proxy, or plain text from aiohttp
  }
  return { status: response.status, title: response.statusText, detail: text.trim().slice(0, 200) || `${response.status} ${response.statusText}` };
}

export async function requestJson<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json, application/problem+json', ...options.headers };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const abort = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, timeoutMs);
  const forward = () => abort.abort();
  options.signal?.addEventListener('abort', forward);
  let response: Response;
  try {
    if (options.signal?.aborted) abort.abort();
    response = await fetch(path, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: abort.signal,
      cache: 'no-store',
    });
  } catch (error) {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', forward);
    if (!timedOut && error instanceof DOMException && error.name === 'AbortError') throw error;
    for (const listener of unanswered) listener();
    throw new ApiError(networkProblem(error, timedOut ? timeoutMs : null));
  }
  clearTimeout(timer);
  options.signal?.removeEventListener('abort', forward);
  if (!response.ok) throw new ApiError(await readProblem(response));
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/** Whether `error` is a request that got no answer (offline, unreachable, timed out). */
export function isNetworkError(error: unknown): boolean {
  return error instanceof ApiError && error.status === 0;
}

/** At most this many field errors are spelled out; the rest are counted. */
const MAX_FIELD_ERRORS = 5;

/** A problem's field errors (a 400/422 `errors` array) as "name: String should have at most 200
 *  characters", one per field, so a form says which field is wrong and why rather than only
 *  "the request body does not match the schema". */
export function fieldErrors(problem: Problem): string[] {
  const errors = Array.isArray(problem.errors) ? problem.errors : [];
  const lines = errors.slice(0, MAX_FIELD_ERRORS).map((e) => {
    // "body" leads some paths (where the value sat in the request), which tells an admin nothing
    const path = (Array.isArray(e.loc) ? e.loc : []).filter((p, i) => !(i === 0 && p === 'body')).join('.');
    return path ? `${path}: ${e.msg}` : String(e.msg);
  });
  if (errors.length > MAX_FIELD_ERRORS) lines.push(`and ${errors.length - MAX_FIELD_ERRORS} more`);
  return lines;
}

/** The message to show a user for any failure. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    const fields = fieldErrors(error.problem);
    return fields.length === 0 ? error.message : `${error.message.replace(/[.:]\s*$/, '')}: ${fields.join('; ')}`;
  }
  if (error instanceof Error) return error.message;
  return String(error);
}
