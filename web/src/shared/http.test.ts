import { describe, expect, it } from 'vitest';

import { ApiError, describeError, fieldErrors } from './http';

describe('describeError', () => {
  it('names the field and what is wrong with it', () => {
    const error = new ApiError({
      status: 400,
      detail: 'the request body does not match the schema',
      errors: [{ loc: ['name'], msg: 'String should have at most 200 characters', type: 'string_too_long' }],
    });
    expect(describeError(error)).toBe('the request body does not match the schema: name: String should have at most 200 characters');
  });

  it('joins nested paths and lists several fields', () => {
    const problem = {
      status: 400,
      errors: [
        { loc: ['body', 'layout', 'sections', 0, 'rows'], msg: 'Input should be greater than 0', type: 'greater_than' },
        { loc: ['venue'], msg: 'Field required', type: 'missing' },
      ],
    };
    expect(fieldErrors(problem)).toEqual(['layout.sections.0.rows: Input should be greater than 0', 'venue: Field required']);
  });

  it('counts what it does not spell out', () => {
    const errors = Array.from({ length: 7 }, (_, i) => ({ loc: [`f${i}`], msg: 'bad', type: 'x' }));
    expect(fieldErrors({ status: 400, errors })).toHaveLength(6);
    expect(fieldErrors({ status: 400, errors }).at(-1)).toBe('and 2 more');
  });

  it('keeps the plain message when there are no field errors', () => {
    expect(describeError(new ApiError({ status: 409, detail: 'The event is not on sale now.' }))).toBe('The event is not on sale now.');
    expect(describeError(new Error('boom'))).toBe('boom');
  });
});
