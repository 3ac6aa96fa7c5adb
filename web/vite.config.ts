// Two pages, one build: the audience app (index.html) and the admin console (admin.html), with
// hashed assets under dist/assets that server/web.py serves with long cache lifetimes.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const page = (name: string): string => fileURLToPath(new URL(name, import.meta.url));

// The dev server (`npm run dev`) proxies the API and the STOMP WebSocket to a local node.
const backend = process.env.CONCERT_HUB_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  // esbuild's automatic JSX runtime: no React plugin (and no Fast Refresh) needed.
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Every browser that runs this UI (ES modules, canvas roundRect) knows modulepreload.
    modulePreload: { polyfill: false },
    rollupOptions: {
      input: { index: page('index.html'), admin: page('admin.html'), scan: page('scan.html') },
      output: {
        // Code both pages share gets a name that says what it is (else Rollup names the
        // chunk after whichever module it saw first).
        manualChunks(id) {
          if (id.includes('/node_modules/jsqr/')) return 'jsqr'; // the scanner's alone
          if (id.includes('/node_modules/')) return 'vendor';
          if (id.includes('/src/shared/')) return 'shared';
          return undefined;
        },
      },
    },
  },
  server: {
    proxy: {
      '/api': backend,
      '/ws': { target: backend.replace(/^http/, 'ws'), ws: true },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
