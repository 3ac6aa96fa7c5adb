// The door scanner page (/scan).

import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import '../shared/styles.css';
import './scan.css';
import { ScanApp } from './ScanApp';

const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <ScanApp />
    </StrictMode>,
  );
}
