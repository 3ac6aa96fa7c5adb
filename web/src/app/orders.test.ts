import { describe, expect, it } from 'vitest';

import { emailProblem } from './orders';

describe('emailProblem', () => {
  it('accepts a plausible address, spaces around it too', () => {
    expect(emailProblem('buyer@example.com')).toBeNull();
    expect(emailProblem('  buyer@example.com ')).toBeNull();
  });

  it('asks for an address when there is none', () => {
    expect(emailProblem('')).toBe('Enter the e-mail address your tickets should go to.');
    expect(emailProblem('   ')).toBe('Enter the e-mail address your tickets should go to.');
  });

  it('says an address is not valid', () => {
    for (const bad of ['buyer', 'buyer@', 'buyer@example', 'a b@example.com']) {
      expect(emailProblem(bad)).toBe('Enter a valid e-mail address, such as you@example.com.');
    }
  });
});
