// The door scanner page (/scan).

import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import '../shared/styles.css';
import './scan.css';
import { ScanApp } from './ScanApp';

// Keeps the page and its assets for opening without a network (web/public/scan-sw.js).
if ('serviceWorker' in navigator) {
  void navigator.serviceWorker.register('/scan-sw.js', { scope: '/scan' }).catch(() => undefined);
}

const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <ScanApp />
    </StrictMode>,
  );
}
