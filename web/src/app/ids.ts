// Random ids for Idempotency-Key headers. crypto.randomUUID exists only in secure contexts
// (https, localhost), and a LAN demo over plain http is not one; getRandomValues always is.

export function randomKey(): string {
  if (typeof crypto.randomUUID === 'function' && window.isSecureContext) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
