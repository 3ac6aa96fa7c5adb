// Solves a waiting room's proof-of-work challenge off the page's thread: finds a nonce such that
// SHA-256(`challenge:nonce`) has `difficulty` leading zero bits (see booking/proof.py), telling
// the page how many tries it made so far.

interface Task {
  challenge: string;
  difficulty: number;
}

const BATCH = 512;

function leadingZeroBits(digest: ArrayBuffer): number {
  const bytes = new Uint8Array(digest);
  let bits = 0;
  for (const byte of bytes) {
    if (byte === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}

self.onmessage = async (message: MessageEvent<Task>) => {
  const { challenge, difficulty } = message.data;
  const encoder = new TextEncoder();
  for (let start = 0; ; start += BATCH) {
    const tries = [];
    for (let n = start; n < start + BATCH; n++) {
      tries.push(crypto.subtle.digest('SHA-256', encoder.encode(`${challenge}:${n}`)));
    }
    const digests = await Promise.all(tries);
    const found = digests.findIndex((d) => leadingZeroBits(d) >= difficulty);
    if (found >= 0) {
      self.postMessage({ proof: `${challenge}:${start + found}`, tried: start + found + 1 });
      return;
    }
    self.postMessage({ tried: start + BATCH });
  }
};
