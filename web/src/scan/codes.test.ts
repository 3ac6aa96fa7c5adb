import { describe, expect, it } from 'vitest';

import { type CheckInList, parseCode, ticketId, toBase64Url, verifyExitOffline, verifyOffline } from './codes';

const encoder = new TextEncoder();

async function keyAndCode(eventId: number, seat: string) {
  const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  const kid = 'k1';
  const signed = `T2.${kid}.${toBase64Url(encoder.encode(`${eventId}|${seat}|0badf00d`))}`;
  const signature = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, pair.privateKey, encoder.encode(signed)));
  return { code: `${signed}.${toBase64Url(signature)}`, key: { kid, public_key: toBase64Url(raw), created_at: '', retired_at: null } };
}

function list(keys: CheckInList['keys'], extra: Partial<CheckInList> = {}): CheckInList {
  return { event_id: 7, generated_at: '', reentry: false, valid: [], void: [], used: [], keys, ...extra };
}

describe('ticket codes', () => {
  it('computes the same ticket id as the server', async () => {
    // booking.ticket_keys.ticket_id of the same text
    expect(await ticketId('T2.abcd1234.MTJ8QS1BLTF8ZGVhZGJlZWY.sig')).toBe('rhce8y5h_LoJAT3d');
  });

  it('parses what a code says without trusting it', () => {
    expect(parseCode('T2.abcd1234.MTJ8QS1BLTF8ZGVhZGJlZWY.c2ln')).toMatchObject({ kind: 'ed25519', kid: 'abcd1234', eventId: 12, seatId: 'A-A-1' });
    expect(parseCode('payload.mac')).toEqual({ kind: 'legacy' });
    expect(parseCode('garbage')).toBeNull();
  });

  it('verifies offline: admitted, then already used, and refuses forged, void and other events', async () => {
    const { code, key } = await keyAndCode(7, 'S-A-1');
    const used = new Set<string>();
    const cached = list([key]);
    expect((await verifyOffline(code, 7, cached, used)).reason).toBe('admitted');
    used.add(await ticketId(code));
    expect((await verifyOffline(code, 7, cached, used)).reason).toBe('already_used');
    expect((await verifyOffline(code, 8, cached, new Set())).reason).toBe('wrong_event');
    // Change a character well inside the signature: the last one of a base64url signature
    // carries padding bits, and changing those alone leaves the signature valid.
    const at = code.length - 20;
    const tampered = code.slice(0, at) + (code[at] === 'A' ? 'B' : 'A') + code.slice(at + 1);
    expect((await verifyOffline(tampered, 7, cached, new Set())).reason).toBe('forged');
    expect((await verifyOffline(code, 7, list([]), new Set())).reason).toBe('forged');
    const voided = list([key], { void: [await ticketId(code)] });
    expect((await verifyOffline(code, 7, voided, new Set())).reason).toBe('void');
  });

  it('admits a legacy code offline only when the list names it', async () => {
    const legacy = 'cGF5bG9hZA.bWFj';
    expect((await verifyOffline(legacy, 7, list([]), new Set())).reason).toBe('forged');
    const known = list([], { valid: [await ticketId(legacy)] });
    expect((await verifyOffline(legacy, 7, known, new Set())).reason).toBe('admitted');
  });

  it('answers exit scans offline from the list and what this scanner saw since', async () => {
    const { code, key } = await keyAndCode(7, 'S-A-2');
    const id = await ticketId(code);
    const inside = list([key], { reentry: true, used: [id] });
    const used = new Set<string>();
    const left = new Set<string>();
    expect((await verifyExitOffline(code, 7, inside, used, left)).reason).toBe('exited');
    left.add(id); // let out here: outside now, so an entry admits again
    expect((await verifyExitOffline(code, 7, inside, used, left)).reason).toBe('not_inside');
    expect((await verifyOffline(code, 7, inside, used, left)).reason).toBe('admitted');
    expect((await verifyExitOffline(code, 8, inside, used, left)).reason).toBe('wrong_event');
  });
});
