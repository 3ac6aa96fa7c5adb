import { describe, expect, it } from 'vitest';

import { cameraProblem, cameraProblemText, cameraUnavailable, canRetry } from './camera';

const rejection = (name: string) => new DOMException('the browser’s own words', name);

describe('camera problems', () => {
  it('reads getUserMedia’s errors by name', () => {
    expect(cameraProblem(rejection('NotAllowedError'))).toBe('blocked');
    expect(cameraProblem(rejection('SecurityError'))).toBe('blocked');
    expect(cameraProblem(rejection('NotFoundError'))).toBe('missing');
    expect(cameraProblem(rejection('OverconstrainedError'))).toBe('missing');
    expect(cameraProblem(rejection('NotReadableError'))).toBe('busy');
    expect(cameraProblem(rejection('AbortError'))).toBe('busy');
  });

  it('knows the older names some browsers still use', () => {
    expect(cameraProblem({ name: 'PermissionDeniedError' })).toBe('blocked');
    expect(cameraProblem({ name: 'DevicesNotFoundError' })).toBe('missing');
    expect(cameraProblem({ name: 'TrackStartError' })).toBe('busy');
  });

  it('anything else is unknown', () => {
    expect(cameraProblem(new TypeError('undefined is not a function'))).toBe('unknown');
    expect(cameraProblem('no')).toBe('unknown');
    expect(cameraProblem(null)).toBe('unknown');
    expect(cameraProblem({ name: 'toString' })).toBe('unknown');
  });

  it('no getUserMedia: http hides it, else the browser lacks it', () => {
    expect(cameraUnavailable(false)).toBe('insecure');
    expect(cameraUnavailable(true)).toBe('unsupported');
  });

  it('says what to do in plain words, never the browser’s message', () => {
    expect(cameraProblemText('blocked')).toMatch(/^Camera blocked: allow the camera .* settings, then tap Try camera again\.$/);
    expect(cameraProblemText('missing')).toContain('No camera found');
    expect(cameraProblemText('busy')).toContain('in use by another app');
    expect(cameraProblemText('insecure')).toContain('https');
    for (const problem of ['blocked', 'missing', 'busy', 'insecure', 'unsupported', 'unknown'] as const) {
      expect(cameraProblemText(problem)).not.toMatch(/Error|Permission denied|Requested device/);
    }
  });

  it('offers to try again only where that can help', () => {
    expect(canRetry('blocked')).toBe(true);
    expect(canRetry('missing')).toBe(true);
    expect(canRetry('busy')).toBe(true);
    expect(canRetry('unknown')).toBe(true);
    expect(canRetry('insecure')).toBe(false);
    expect(canRetry('unsupported')).toBe(false);
  });
});
