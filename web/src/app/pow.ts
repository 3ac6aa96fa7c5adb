// Proof of work on joining a waiting room (issue 15): solved in a Web Worker so the page stays
// responsive, with progress as the share of the expected 2^difficulty tries made so far.

/** Solve `challenge`; `onProgress` hears 0..1 (capped: a hard challenge may take longer). */
export function solveProof(challenge: string, difficulty: number, onProgress: (share: number) => void): Promise<string> {
  const expected = 2 ** difficulty;
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./pow.worker.ts', import.meta.url), { type: 'module' });
    worker.onmessage = (event: MessageEvent<{ proof?: string; tried: number }>) => {
      onProgress(Math.min(0.99, event.data.tried / expected));
      if (event.data.proof) {
        onProgress(1);
        worker.terminate();
        resolve(event.data.proof);
      }
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Error(event.message || 'the proof of work failed'));
    };
    worker.postMessage({ challenge, difficulty });
  });
}
