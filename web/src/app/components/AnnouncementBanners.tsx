import { useAnnouncements } from '../announcements';

/** Admin broadcasts, newest first, each dismissible. */
export function AnnouncementBanners() {
  const items = useAnnouncements((s) => s.items);
  const dismiss = useAnnouncements((s) => s.dismiss);
  if (items.length === 0) return null;
  return (
    <div className="announcements" role="region" aria-label="Announcements">
      {items.map((a) => (
        <div key={a.id} className={`announcement announcement--${a.level}`} role={a.level === 'info' ? 'status' : 'alert'} data-testid="announcement">
          {/* Drawn with CSS, not emoji: emoji fonts are missing on many Linux desktops. */}
          <span className="announcement__icon" aria-hidden="true">
            {a.level === 'info' ? 'i' : '!'}
          </span>
          <span className="visually-hidden">{a.level === 'info' ? 'Announcement' : a.level === 'warning' ? 'Warning' : 'Critical'}: </span>
          <span className="announcement__text">{a.text}</span>
          <button type="button" className="link-button announcement__close" onClick={() => dismiss(a.id)} aria-label="Dismiss announcement">
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
