import { describe, expect, it } from 'vitest';

import {
  incomingInterval,
  INITIAL_STATUS,
  mustReconnect,
  nextStatus,
  silenceCheckMs,
  silenceLimitMs,
  type LiveStatus,
  type StatusSignal,
} from './status';

function run(...signals: StatusSignal[]): LiveStatus {
  return signals.reduce(nextStatus, INITIAL_STATUS);
}

describe('the live status badge', () => {
  it('says connecting until the first CONNECTED, and keeps saying so while the first tries fail', () => {
    expect(run('start').state).toBe('connecting');
    expect(run('start', 'closed', 'start').state).toBe('connecting');
    expect(run('start', 'connected').state).toBe('connected');
  });

  it('says reconnecting once a connection that worked is lost', () => {
    expect(run('start', 'connected', 'closed').state).toBe('reconnecting');
    expect(run('start', 'connected', 'closed', 'start', 'closed').state).toBe('reconnecting');
    expect(run('start', 'connected', 'closed', 'start', 'connected').state).toBe('connected');
  });

  it('leaves "connected" on silence, and asks for a new connection', () => {
    const live = run('start', 'connected');
    expect(nextStatus(live, 'silent').state).toBe('reconnecting');
    expect(mustReconnect(live, 'silent')).toBe(true);
    // Only a CONNECTED brings it back: bytes on the old socket do not.
    expect(run('start', 'connected', 'silent', 'closed', 'start').state).toBe('reconnecting');
  });

  it('a request that got no answer never stands beside "connected"', () => {
    const live = run('start', 'connected');
    expect(nextStatus(live, 'request-failed').state).not.toBe('connected');
    expect(mustReconnect(live, 'request-failed')).toBe(true);
    // Already not connected: nothing more to do.
    const down = run('start', 'connected', 'closed');
    expect(nextStatus(down, 'request-failed')).toBe(down);
    expect(mustReconnect(down, 'request-failed')).toBe(false);
  });

  it('says offline while the browser does, whatever the socket did', () => {
    const offline = run('start', 'connected', 'browser-offline');
    expect(offline.state).toBe('offline');
    expect(nextStatus(offline, 'closed').state).toBe('offline');
    expect(nextStatus(offline, 'start').state).toBe('offline');
    expect(nextStatus(offline, 'request-failed').state).toBe('offline');
    expect(nextStatus(offline, 'browser-online').state).toBe('reconnecting');
    expect(nextStatus(offline, 'connected').state).toBe('connected');
  });

  it('never reported offline before the first connection: connecting again when the network returns', () => {
    expect(run('start', 'browser-offline', 'browser-online').state).toBe('connecting');
  });

  it('disconnected only when stopped', () => {
    expect(run('start', 'connected', 'stopped').state).toBe('disconnected');
    expect(run('start', 'connected', 'stopped', 'closed').state).toBe('disconnected');
    expect(run('start', 'connected', 'stopped', 'browser-offline').state).toBe('disconnected');
  });
});

describe('heart-beat timing', () => {
  it('uses the larger of the server offer and our wish, none if either is 0', () => {
    expect(incomingInterval('10000,10000', 1000)).toBe(10000);
    expect(incomingInterval('500,500', 1000)).toBe(1000);
    expect(incomingInterval('0,10000', 1000)).toBe(0);
    expect(incomingInterval(undefined, 1000)).toBe(0);
    expect(incomingInterval('garbage', 1000)).toBe(0);
  });

  it('notices silence within two intervals but not within one', () => {
    for (const interval of [1000, 2000, 10000]) {
      const latest = silenceLimitMs(interval) + silenceCheckMs(interval);
      expect(latest).toBeLessThan(2 * interval);
      expect(silenceLimitMs(interval)).toBeGreaterThan(interval);
    }
  });
});
