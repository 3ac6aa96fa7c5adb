// Where keyboard focus goes when the part of the page that had it goes away.
//
// A button that replaces itself (Hold → the payment panel) or turns disabled while it works
// (Pay → "Processing payment…") drops focus to <body>: a keyboard or screen-reader user is sent
// back to the top of the page with no word of what happened. These helpers put it somewhere
// meaningful instead (WCAG 2.4.3 focus order, 3.2.2 on input).

/** Whether focus is nowhere useful: on <body> (its element was removed) or on a disabled
 *  control (which Chrome leaves focused but unusable). */
export function focusLost(doc: Document = document): boolean {
  const active = doc.activeElement;
  if (active === null || active === doc.body || active === doc.documentElement) return true;
  return (active as HTMLButtonElement).disabled === true;
}

/** Focus `element` (made focusable by script only, if it is not focusable already). */
export function focusElement(element: HTMLElement): void {
  if (element.tabIndex < 0 && !element.hasAttribute('tabindex')) element.setAttribute('tabindex', '-1');
  element.focus();
}

/**
 * After a route change: focus the page's main heading (the first h1 in `container`) as soon as
 * it is rendered (pages show "Loading…" first), so a screen reader reads the new page's name and
 * Tab starts from it. Gives up when anything else takes focus first (a panel that focuses its
 * own heading, the user tabbing) or after `timeoutMs`. Returns a function that stops waiting.
 */
export function focusHeadingWhenShown(container: HTMLElement, timeoutMs = 10_000): () => void {
  const doc = container.ownerDocument;
  let done = false;
  const attempt = (): boolean => {
    const heading = container.querySelector<HTMLElement>('h1');
    if (!heading) return false;
    focusElement(heading);
    return true;
  };
  if (attempt()) return () => undefined;
  const observer = new MutationObserver(() => {
    if (attempt()) stop();
  });
  const onFocus = () => stop();
  const timer = setTimeout(() => stop(), timeoutMs);
  function stop(): void {
    if (done) return;
    done = true;
    observer.disconnect();
    doc.removeEventListener('focusin', onFocus);
    clearTimeout(timer);
  }
  observer.observe(container, { childList: true, subtree: true });
  doc.addEventListener('focusin', onFocus);
  return stop;
}
