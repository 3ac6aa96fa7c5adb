// The door scanner's service worker (scope /scan): keeps the page and its assets so that /scan
// opens without a network. The page is fetched network-first (a new build is picked up whenever
// the network is there), hashed assets cache-first (their names change with their content).
const CACHE = 'concert-hub-scan-v1';

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.add('/scan')));
  self.skipWaiting();
});

self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put('/scan', response.clone());
    return response;
  } catch (error) {
    const cached = await cache.match('/scan');
    if (cached) return cached;
    throw error;
  }
}

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (url.pathname === '/scan') event.respondWith(networkFirst(event.request));
  else if (url.pathname.startsWith('/assets/')) event.respondWith(cacheFirst(event.request));
});
