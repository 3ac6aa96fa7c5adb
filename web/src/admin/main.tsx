// The admin console: events and their sale controls, announcements, live statistics.

import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import '../shared/styles.css';
import './admin.css';
import { AdminApp } from './AdminApp';

const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <AdminApp />
    </StrictMode>,
  );
}
