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
}

/** A problem standing in for a network failure (no answer at all): status 0. */
function networkProblem(error: unknown): Problem {
  const why = error instanceof Error ? error.message : String(error);
  return { status: 0, kind: 'network', title: 'Network error', detail: `Could not reach the server (${why}). Check your connection and try again.` };
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
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
      cache: 'no-store',
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error;
    throw new ApiError(networkProblem(error));
  }
  if (!response.ok) throw new ApiError(await readProblem(response));
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/** The message to show a user for any failure. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
