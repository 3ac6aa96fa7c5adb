// The audience app: events, waiting room, live seat map, hold, payment, tickets.

import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import '../shared/styles.css';
import { App } from './App';
import { startLive } from './live';

startLive();

const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
}
