import { useMemo, useState } from 'react';

import type { EventStatus } from '../../shared/types';
import { zoneChoices } from '../../shared/zones';
import type { AdminApi } from '../api';
import {
  buildEvent,
  defaultForm,
  defaultTimes,
  MAX_NAME_LENGTH,
  MAX_POW_DIFFICULTY,
  MAX_VENUE_LENGTH,
  seatCount,
  wallZoneName,
  type EventForm,
  type FormTimes,
  type SectionRow,
  type TierRow,
} from '../eventForm';
import { useEvents } from '../events';
import { eventLabels, refusalLines } from '../fieldLabels';

/** POST /api/admin/events from a form: tiers, then sections × rows × seats. */
export function CreateEventForm({ api }: { api: AdminApi }) {
  const added = useEvents((s) => s.added);
  const [form, setForm] = useState<EventForm>(() => defaultForm());
  const [errors, setErrors] = useState<string[]>([]);
  const [created, setCreated] = useState<string | null>(null);
  const [sending, setSending] = useState(false);
  const zones = useMemo(zoneChoices, []);
  // Until a time is typed, the times are the defaults and follow the zone chosen (the sale
  // opening "now" stays now); once one is, every typed time stays as typed, on the new clock.
  const [timesTyped, setTimesTyped] = useState(false);

  const set = <K extends keyof EventForm>(key: K, value: EventForm[K]) => setForm((f) => ({ ...f, [key]: value }));
  const setTime = (key: keyof FormTimes, value: string) => {
    setTimesTyped(true);
    set(key, value);
  };
  const setZone = (timeZone: string) => setForm((f) => ({ ...f, timeZone, ...(timesTyped ? {} : defaultTimes(new Date(), timeZone)) }));
  const setTier = (i: number, patch: Partial<TierRow>) =>
    setForm((f) => {
      const old = f.tiers[i]?.name;
      const tiers = f.tiers.map((t, k) => (k === i ? { ...t, ...patch } : t));
      // Renaming a tier renames it in the sections that use it.
      const sections = patch.name !== undefined ? f.sections.map((s) => (s.tier === old ? { ...s, tier: patch.name ?? '' } : s)) : f.sections;
      return { ...f, tiers, sections };
    });
  const setSection = (i: number, patch: Partial<SectionRow>) =>
    setForm((f) => ({ ...f, sections: f.sections.map((s, k) => (k === i ? { ...s, ...patch } : s)) }));

  const submit = async () => {
    setCreated(null);
    const built = buildEvent(form);
    if (!built.ok) {
      setErrors(built.errors);
      return;
    }
    setErrors([]);
    setSending(true);
    try {
      const detail = await api.createEvent(built.spec);
      added(detail);
      setCreated(`Created event #${detail.id} “${detail.name}” with ${detail.seat_count.toLocaleString('en')} seats.`);
      setForm(defaultForm(new Date(), form.timeZone));
      setTimesTyped(false);
    } catch (error) {
      setErrors(refusalLines(error, eventLabels(built.spec)));
    } finally {
      setSending(false);
    }
  };

  return (
    <section className="card" id="new-event" aria-labelledby="create-title">
      <h2 id="create-title" className="card__title">
        Create an event
      </h2>
      <form
        className="stack"
        data-testid="create-event-form"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <div className="row">
          <label className="field field--grow">
            <span className="field__label">Name</span>
            <input type="text" value={form.name} onChange={(e) => set('name', e.target.value)} required maxLength={MAX_NAME_LENGTH} data-testid="event-name" />
          </label>
          <label className="field field--grow">
            <span className="field__label">Venue</span>
            <input type="text" value={form.venue} onChange={(e) => set('venue', e.target.value)} required maxLength={MAX_VENUE_LENGTH} data-testid="event-venue" />
          </label>
        </div>
        <div className="row">
          <label className="field">
            <span className="field__label">Time zone</span>
            <select value={form.timeZone} onChange={(e) => setZone(e.target.value)} data-testid="event-timezone">
              {zones.map((zone) => (
                <option key={zone} value={zone}>
                  {zone}
                </option>
              ))}
            </select>
          </label>
          <label className="field">
            <span className="field__label">Starts ({wallZoneName(form.startsAt, form.timeZone)})</span>
            <input type="datetime-local" value={form.startsAt} onChange={(e) => setTime('startsAt', e.target.value)} data-testid="event-starts" />
          </label>
          <label className="field">
            <span className="field__label">Sale opens ({wallZoneName(form.saleOpensAt, form.timeZone)})</span>
            <input type="datetime-local" value={form.saleOpensAt} onChange={(e) => setTime('saleOpensAt', e.target.value)} data-testid="event-sale-opens" />
          </label>
          <label className="field">
            <span className="field__label">Sale closes ({wallZoneName(form.saleClosesAt, form.timeZone)})</span>
            <input type="datetime-local" value={form.saleClosesAt} onChange={(e) => setTime('saleClosesAt', e.target.value)} data-testid="event-sale-closes" />
          </label>
        </div>
        <div className="row">
          <label className="field">
            <span className="field__label">Status</span>
            <select value={form.status} onChange={(e) => set('status', e.target.value as EventStatus)}>
              <option value="on_sale">On sale</option>
              <option value="draft">Draft</option>
              <option value="paused">Paused</option>
              <option value="closed">Closed</option>
            </select>
          </label>
          <label className="field field--narrow">
            <span className="field__label">Currency</span>
            <input type="text" maxLength={3} value={form.currency} onChange={(e) => set('currency', e.target.value.toUpperCase())} />
          </label>
          <label className="field field--narrow">
            <span className="field__label">Hold time (s)</span>
            <input type="number" min="10" max="3600" placeholder="default" value={form.holdTtl} onChange={(e) => set('holdTtl', e.target.value)} />
          </label>
          <label className="field field--narrow">
            <span className="field__label">Seats per user</span>
            <input type="number" min="1" max="100" placeholder="default" value={form.maxSeatsPerUser} onChange={(e) => set('maxSeatsPerUser', e.target.value)} />
          </label>
        </div>
        <fieldset className="fieldset">
          <legend>Waiting room</legend>
          <div className="row">
            <label className="toggle">
              <input type="checkbox" checked={form.waitingRoom} data-testid="create-waiting-room" onChange={(e) => set('waitingRoom', e.target.checked)} />
              Queue buyers before they can hold seats
            </label>
            <label className="field field--narrow">
              <span className="field__label">Admissions / s</span>
              <input type="number" min="0.01" step="any" value={form.admissionRate} disabled={!form.waitingRoom} onChange={(e) => set('admissionRate', e.target.value)} />
            </label>
            <label className="field field--narrow">
              <span className="field__label">Max shoppers</span>
              <input type="number" min="1" value={form.maxActiveShoppers} disabled={!form.waitingRoom} onChange={(e) => set('maxActiveShoppers', e.target.value)} />
            </label>
          </div>
          <div className="row">
            <label className="field field--narrow">
              <span className="field__label">Mode</span>
              <select
                value={form.admissionMode}
                disabled={!form.waitingRoom}
                data-testid="create-admission-mode"
                onChange={(e) => set('admissionMode', e.target.value === 'adaptive' ? 'adaptive' : 'fixed')}
              >
                <option value="fixed">Fixed rate</option>
                <option value="adaptive">Adaptive (follows health)</option>
              </select>
            </label>
            {form.admissionMode === 'adaptive' && (
              <>
                <label className="field field--narrow">
                  <span className="field__label">Min / s</span>
                  <input type="number" min="0.01" step="any" value={form.admissionRateMin} disabled={!form.waitingRoom} data-testid="create-admission-rate-min" onChange={(e) => set('admissionRateMin', e.target.value)} />
                </label>
                <label className="field field--narrow">
                  <span className="field__label">Max / s</span>
                  <input type="number" min="0.01" step="any" value={form.admissionRateMax} disabled={!form.waitingRoom} data-testid="create-admission-rate-max" onChange={(e) => set('admissionRateMax', e.target.value)} />
                </label>
              </>
            )}
            <label className="field field--narrow">
              <span className="field__label">Proof of work (bits)</span>
              <input type="number" min="0" max={MAX_POW_DIFFICULTY} step="1" value={form.powDifficulty} disabled={!form.waitingRoom} data-testid="create-pow-difficulty" onChange={(e) => set('powDifficulty', e.target.value)} />
            </label>
          </div>
        </fieldset>
        <fieldset className="fieldset">
          <legend>Price tiers</legend>
          {form.tiers.map((tier, i) => (
            <div className="row" key={i}>
              <label className="field field--grow">
                <span className="field__label">Tier name</span>
                <input type="text" value={tier.name} onChange={(e) => setTier(i, { name: e.target.value })} />
              </label>
              <label className="field field--narrow">
                <span className="field__label">Price ({form.currency})</span>
                <input type="number" min="0" step="0.01" value={tier.price} onChange={(e) => setTier(i, { price: e.target.value })} />
              </label>
              <button type="button" className="button button--ghost button--small" aria-label={`Remove tier ${tier.name}`} disabled={form.tiers.length === 1} onClick={() => set('tiers', form.tiers.filter((_, k) => k !== i))}>
                Remove
              </button>
            </div>
          ))}
          <button type="button" className="button button--ghost button--small" onClick={() => set('tiers', [...form.tiers, { name: `Tier ${form.tiers.length + 1}`, price: '50' }])}>
            + Add tier
          </button>
        </fieldset>
        <fieldset className="fieldset">
          <legend>Layout: sections × rows × seats</legend>
          {form.sections.map((section, i) => (
            <div className="row" key={i}>
              <label className="field">
                <span className="field__label">Section</span>
                <input type="text" value={section.name} onChange={(e) => setSection(i, { name: e.target.value.toUpperCase() })} />
              </label>
              <label className="field field--narrow">
                <span className="field__label">Rows</span>
                <input type="number" min="1" max="200" value={section.rows} onChange={(e) => setSection(i, { rows: e.target.value })} />
              </label>
              <label className="field field--narrow">
                <span className="field__label">Seats per row</span>
                <input type="number" min="1" max="500" value={section.seatsPerRow} onChange={(e) => setSection(i, { seatsPerRow: e.target.value })} />
              </label>
              <label className="field">
                <span className="field__label">Tier</span>
                <select value={section.tier} onChange={(e) => setSection(i, { tier: e.target.value })}>
                  {form.tiers.map((t) => (
                    <option key={t.name} value={t.name}>
                      {t.name}
                    </option>
                  ))}
                </select>
              </label>
              <button type="button" className="button button--ghost button--small" aria-label={`Remove section ${section.name}`} disabled={form.sections.length === 1} onClick={() => set('sections', form.sections.filter((_, k) => k !== i))}>
                Remove
              </button>
            </div>
          ))}
          <button
            type="button"
            className="button button--ghost button--small"
            onClick={() => set('sections', [...form.sections, { name: `S${form.sections.length + 1}`, rows: '10', seatsPerRow: '30', tier: form.tiers[0]?.name ?? '' }])}
          >
            + Add section
          </button>
          <p className="muted small">{seatCount(form).toLocaleString('en')} seats in total.</p>
        </fieldset>
        {errors.length > 0 && (
          <div className="message message--error" role="alert" data-testid="error-message">
            <ul>
              {errors.map((e) => (
                <li key={e}>{e}</li>
              ))}
            </ul>
          </div>
        )}
        {created && (
          <p className="message message--notice" role="status" data-testid="create-result">
            {created}
          </p>
        )}
        <button type="submit" className="button button--primary" disabled={sending} data-testid="create-event">
          {sending ? 'Creating…' : 'Create event'}
        </button>
      </form>
    </section>
  );
}
