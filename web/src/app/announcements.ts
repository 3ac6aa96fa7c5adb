// Admin announcements (SPEC §4: /topic/announcements and /topic/events/{id}/announcements),
// newest first, shown as banners until dismissed.

import { create } from 'zustand';

import type { Announcement } from '../shared/types';

const MAX_SHOWN = 5;

interface AnnouncementsState {
  items: Announcement[];
  add(announcement: Announcement): void;
  dismiss(id: string): void;
}

export const useAnnouncements = create<AnnouncementsState>()((set) => ({
  items: [],
  add: (announcement) =>
    set((state) =>
      state.items.some((a) => a.id === announcement.id)
        ? state
        : { items: [announcement, ...state.items].slice(0, MAX_SHOWN) },
    ),
  dismiss: (id) => set((state) => ({ items: state.items.filter((a) => a.id !== id) })),
}));
