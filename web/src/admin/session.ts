// The admin's token: pasted once (from `concert-hub token --user NAME --role admin`), checked
// against GET /api/admin/stats, kept in localStorage.

import { create } from 'zustand';

import { ApiError, describeError } from '../shared/http';
import { load, save } from '../shared/storage';
import { adminApi, type AdminApi } from './api';

const KEY = 'admin-token';

interface SessionState {
  token: string | null;
  api: AdminApi | null;
  checking: boolean;
  error: string | null;
  login(token: string): Promise<boolean>;
  logout(): void;
}

export const useSession = create<SessionState>()((set) => ({
  token: null,
  api: null,
  checking: false,
  error: null,

  async login(raw) {
    const token = raw.trim().replace(/^Bearer\s+/i, '');
    if (!token) {
      set({ error: 'Paste an admin token first.' });
      return false;
    }
    set({ checking: true, error: null });
    const api = adminApi(token);
    try {
      await api.stats();
      save(KEY, token);
      set({ token, api, checking: false });
      return true;
    } catch (error) {
      let message = describeError(error);
      if (error instanceof ApiError && error.status === 401) message = `The server refused this token: ${error.message}`;
      if (error instanceof ApiError && error.status === 403) message = 'This token is valid but not an admin token (make one with --role admin).';
      save(KEY, null);
      set({ checking: false, error: message, token: null, api: null });
      return false;
    }
  },

  logout() {
    save(KEY, null);
    set({ token: null, api: null, error: null });
  },
}));

/** The kept token, to try at start-up. */
export function keptToken(): string | null {
  return load<string>(KEY);
}
