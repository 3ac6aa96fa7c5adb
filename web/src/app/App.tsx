import { useEffect, useLayoutEffect, useRef, type RefObject } from 'react';

import { focusHeadingWhenShown } from '../shared/focus';
import { AnnouncementBanners } from './components/AnnouncementBanners';
import { ConnectionBadge } from './components/ConnectionBadge';
import { NotFound } from './components/NotFound';
import { EventList } from './pages/EventList';
import { EventPage } from './pages/EventPage';
import { MyTickets } from './pages/MyTickets';
import { OrderPage } from './pages/OrderPage';
import { SignIn } from './pages/SignIn';
import { href, useRoute, type Route } from './router';

function Page({ route }: { route: Route }) {
  switch (route.name) {
    case 'events':
      return <EventList />;
    case 'event':
      return <EventPage key={route.id} id={route.id} />;
    case 'order':
      return <OrderPage key={route.id} orderId={route.id} orderKey={route.key} />;
    case 'tickets':
      return <MyTickets />;
    case 'signin':
      return <SignIn key={route.link ?? ''} link={route.link} />;
    case 'not-found':
      return (
        <NotFound title="Page not found">
          <p>
            There is no page at <code>{route.path}</code>. The link may be mistyped or out of date.
          </p>
        </NotFound>
      );
  }
}

/** On each route change after the first, focus the new page's h1 (a single-page app never
 *  loads a page, so without this focus stays on <body> or on the link that was clicked). */
function useFocusOnRouteChange(main: RefObject<HTMLElement | null>, key: string): void {
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false; // the first page: the browser's own start, as on any page load
      return undefined;
    }
    return main.current ? focusHeadingWhenShown(main.current) : undefined;
  }, [main, key]);
}

/** The top bar's height as `--topbar-height` on `root`: what stays in view under it (the
 *  announcements, a panel scrolled to) is placed by it where the bar sticks (styles.css). */
function useTopbarHeight(root: RefObject<HTMLElement | null>, topbar: RefObject<HTMLElement | null>): void {
  useLayoutEffect(() => {
    const page = root.current;
    const bar = topbar.current;
    if (!page || !bar) return undefined;
    const measure = () => page.style.setProperty('--topbar-height', `${bar.offsetHeight}px`);
    const observer = new ResizeObserver(measure);
    observer.observe(bar);
    measure();
    return () => observer.disconnect();
  }, [root, topbar]);
}

export function App() {
  const route = useRoute();
  const root = useRef<HTMLDivElement>(null);
  const topbar = useRef<HTMLElement>(null);
  const main = useRef<HTMLElement>(null);
  useFocusOnRouteChange(main, JSON.stringify(route));
  useTopbarHeight(root, topbar);
  return (
    <div className="audience" ref={root}>
      <header className="topbar" ref={topbar}>
        <div className="topbar__inner">
          <a className="brand" href={href.events()}>
            <span className="brand__mark" aria-hidden="true">♪</span> Concert-Hub
          </a>
          <nav className="topnav" aria-label="Main">
            <a href={href.events()} aria-current={route.name === 'events' ? 'page' : undefined}>
              Events
            </a>
            <a href={href.tickets()} aria-current={route.name === 'tickets' || route.name === 'order' || route.name === 'signin' ? 'page' : undefined}>
              My tickets
            </a>
          </nav>
          <ConnectionBadge />
        </div>
      </header>
      <main className="container" ref={main}>
        <AnnouncementBanners />
        <Page route={route} />
      </main>
    </div>
  );
}
