// The audience page's one live connection, its state as a store, and the page-wide
// subscriptions (announcements to everyone, the user's waiting-room positions), and the
// event page's own (its announcements, its sale status).
//
// REST calls that get no answer tell the connection (so the badge never says "connected" beside
// a "could not reach the server" error), and the connection coming back tells the event page
// (so an error about being offline goes away by itself).

import { create } from 'zustand';

import { onUnanswered } from '../shared/http';
import { invalidateToken, userToken } from '../shared/identity';
import { LiveConnection, type ConnectionState } from '../shared/live';
import { useAnnouncements } from './announcements';
import type { Announcement, EventStatusPush, QueuePosition } from '../shared/types';
import { useShop } from './shop';

export const live = new LiveConnection({
  credentials: userToken,
  onAuthFailed: invalidateToken,
});

export const useConnection = create<{ state: ConnectionState; everConnected: boolean }>(() => ({
  state: live.state,
  everConnected: false,
}));

function parse<T>(body: string): T | null {
  try {
    return JSON.parse(body) as T;
  } catch {
    return null;
  }
}

/** Announcements on `destination` become banners. */
export function listenForAnnouncements(destination: string): () => void {
  const subscription = live.subscribe(destination, (body) => {
    const announcement = parse<Announcement>(body);
    if (announcement && typeof announcement.text === 'string') useAnnouncements.getState().add(announcement);
  });
  return () => subscription.unsubscribe();
}

/** The event's sale status (`/topic/events/{id}/status`) keeps the page's badge and hints
 *  true: an admin's pause shows at once, not at the next refused hold. */
export function listenForStatus(eventId: number): () => void {
  const subscription = live.subscribe(`/topic/events/${eventId}/status`, (body) => {
    const push = parse<EventStatusPush>(body);
    if (push && push.type === 'status' && push.event_id === eventId) useShop.getState().applyStatus(push);
  });
  return () => subscription.unsubscribe();
}

export function startLive(): void {
  live.onStatus((status) => {
    const was = useConnection.getState().state;
    useConnection.setState({ state: status.state, everConnected: status.everConnected });
    if (status.state === 'connected' && was !== 'connected') useShop.getState().connectionBack();
  });
  onUnanswered(() => live.requestFailed());
  listenForAnnouncements('/topic/announcements');
  live.subscribe(
    '/user/queue/position',
    (body) => {
      const position = parse<QueuePosition>(body);
      if (position && typeof position.event_id === 'number') useShop.getState().applyPosition(position);
    },
    { needsAuth: true },
  );
  live.start();
}
