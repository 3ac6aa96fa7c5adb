import { describe, expect, it } from 'vitest';

import { auditDetails, auditTime } from './audit';

describe('audit log details', () => {
  it('an event change says what changed, keys as the API names them', () => {
    expect(auditDetails({ status: 'paused' })).toBe('status: paused');
    expect(auditDetails({ status: 'paused', admission_rate: 5 })).toBe('status: paused, admission_rate: 5');
    expect(auditDetails({ waiting_room: false, refund_cutoff_hours: null })).toBe('waiting_room: false, refund_cutoff_hours: none');
  });

  it('lists and objects are bracketed, long lists cut short', () => {
    expect(auditDetails({ seats: ['S-A-1', 'S-A-2'], amount_cents: 8400, currency: 'EUR' })).toBe(
      'seats: [S-A-1, S-A-2], amount_cents: 8400, currency: EUR',
    );
    expect(auditDetails({ access: { 'S-A-1': 'accessible', 'S-A-2': '' } })).toBe('access: {S-A-1: accessible, S-A-2: ""}');
    const many = Array.from({ length: 25 }, (_, i) => `S-A-${i + 1}`);
    expect(auditDetails({ accessible: many })).toBe(`accessible: [${many.slice(0, 10).join(', ')}, … 15 more]`);
    expect(auditDetails({ events: [] })).toBe('events: []');
  });

  it('no details is a dash', () => {
    expect(auditDetails({})).toBe('—');
    expect(auditDetails(null)).toBe('—');
    expect(auditDetails(undefined)).toBe('—');
  });
});

describe('audit log times', () => {
  it('to the second', () => {
    expect(auditTime('2026-01-06T14:03:27.123456Z', 'UTC')).toBe('Tue, 6 Jan 2026, 14:03:27 UTC');
    expect(auditTime('2026-01-06T14:03:28Z', 'Europe/Berlin')).toBe('Tue, 6 Jan 2026, 15:03:28 CET');
  });

  it('an unreadable time is shown as sent', () => {
    expect(auditTime('yesterday')).toBe('yesterday');
  });
});
