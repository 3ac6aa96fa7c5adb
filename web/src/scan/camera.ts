// Why the scanner has no camera, in the door staff's words (pure): getUserMedia's errors are
// DOMExceptions whose `name` says what went wrong (Media Capture and Streams §9.2, and the older
// names some browsers still use); their `message` is the browser's own and is never shown.

export type CameraProblem =
  /** The user or the browser said no (a denied prompt, a site setting, a permissions policy). */
  | 'blocked'
  /** No camera, or none that meets the request. */
  | 'missing'
  /** A camera is there but could not be opened (another app has it, a hardware fault). */
  | 'busy'
  /** The page is not a secure context (http, not https): browsers hide the camera. */
  | 'insecure'
  /** A secure page in a browser without getUserMedia. */
  | 'unsupported'
  | 'unknown';

const BY_NAME = new Map<string, CameraProblem>([
  ['NotAllowedError', 'blocked'],
  ['PermissionDeniedError', 'blocked'],
  ['SecurityError', 'blocked'],
  ['NotFoundError', 'missing'],
  ['DevicesNotFoundError', 'missing'],
  ['OverconstrainedError', 'missing'],
  ['ConstraintNotSatisfiedError', 'missing'],
  ['NotReadableError', 'busy'],
  ['TrackStartError', 'busy'],
  ['AbortError', 'busy'],
]);

/** What a rejection of getUserMedia means. */
export function cameraProblem(caught: unknown): CameraProblem {
  const name = typeof caught === 'object' && caught !== null ? (caught as { name?: unknown }).name : undefined;
  return (typeof name === 'string' && BY_NAME.get(name)) || 'unknown';
}

/** Why there is no getUserMedia to call at all. */
export function cameraUnavailable(secureContext: boolean): CameraProblem {
  return secureContext ? 'unsupported' : 'insecure';
}

const WORDS: Record<CameraProblem, string> = {
  blocked: 'Camera blocked: allow the camera for this site in the browser’s settings, then tap Try camera again.',
  missing: 'No camera found on this device: connect one and tap Try camera again, or type the codes by hand.',
  busy: 'The camera is in use by another app or could not start: close that app, then tap Try camera again.',
  insecure: 'The camera works only when this page is opened over https: ask for the https link. Type the codes by hand meanwhile.',
  unsupported: 'This browser cannot use the camera: type the codes by hand, or open the page in another browser.',
  unknown: 'The camera could not start: tap Try camera again, or type the codes by hand.',
};

export function cameraProblemText(problem: CameraProblem): string {
  return WORDS[problem];
}

/** Whether trying again can help (it cannot while the page is on http or the browser lacks it). */
export function canRetry(problem: CameraProblem): boolean {
  return problem !== 'insecure' && problem !== 'unsupported';
}
