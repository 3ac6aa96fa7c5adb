// Scenario runner: drives the real @stomp/stompjs Client (over the `ws` package) against a STOMP
// over WebSocket broker and prints what a user of the library would observe.
//
//   node tests/js/scenario.mjs <name> '<json-args>'
//
// stdout: zero or more progress lines {"event": ...} (only the `reconnect` scenario), then exactly
// one result line {"result": true, "scenario": ..., ...}. stderr: stompjs debug log (for failure
// reports). The process always exits: a hard timeout (args.timeoutMs, default 20 s) prints a
// result with "timeout": true and exits 3. tests/server/test_stompjs.py is the caller.
//
// A "client spec" is {"headers": {...connect headers...}, "config": {...stompjs options...},
// "protocols": [...ws subprotocols...]}. Bodies are {"text": s} | {"repeat": s, "count": n} |
// {"base64": b64} (the last is sent as binaryBody).

import { createHash, randomUUID } from 'node:crypto';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

const DEFAULT_PROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];
const T0 = Date.now();

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function log(line) {
  process.stderr.write(`[${String(Date.now() - T0).padStart(6)}ms] ${line}\n`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Poll `cond` until true or `ms` elapse; returns the final truthiness.
async function until(cond, ms, step = 10) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() >= deadline) return false;
    await sleep(step);
  }
  return true;
}

function bodyBytes(spec) {
  if (spec == null) return { body: '' };
  if (spec.base64 != null) return { binaryBody: new Uint8Array(Buffer.from(spec.base64, 'base64')) };
  if (spec.repeat != null) return { body: spec.repeat.repeat(spec.count) };
  return { body: spec.text ?? '' };
}

function describeFrame(frame) {
  if (!frame) return null;
  const bytes = Buffer.from(frame.binaryBody ?? new Uint8Array());
  return {
    command: frame.command,
    headers: { ...frame.headers },
    isBinaryBody: frame.isBinaryBody,
    bytesLength: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    base64: bytes.length <= 8192 ? bytes.toString('base64') : null,
    text: bytes.length <= 8192 ? frame.body : null,
  };
}

let clientCounter = 0;

// One stompjs Client plus everything it reported, so scenarios can wait on and report it.
class Observed {
  constructor(url, spec = {}, name = `c${++clientCounter}`) {
    this.name = name;
    this.connects = []; // CONNECTED headers, one per onConnect
    this.stompErrors = []; // ERROR frames (described)
    this.wsCloses = []; // {code, reason, wasClean}
    this.wsErrors = [];
    this.disconnects = []; // RECEIPT headers of the DISCONNECT (onDisconnect)
    this.receipts = {}; // receipt-id -> RECEIPT headers (watchForReceipt)
    this.unhandled = [];
    this.pingsSent = 0;
    this.pongsReceived = 0;
    this.chunksSent = 0;
    this.wsProtocols = [];
    this.wsExtensions = [];
    this.sockets = 0;
    const protocols = spec.protocols ?? DEFAULT_PROTOCOLS;
    this.client = new Client({
      webSocketFactory: () => {
        this.sockets += 1;
        const ws = new WebSocket(url, protocols);
        ws.addEventListener('open', () => {
          this.wsProtocols.push(ws.protocol);
          this.wsExtensions.push(ws.extensions);
        });
        return ws;
      },
      connectHeaders: spec.headers ?? {},
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      debug: (msg) => {
        if (msg.includes('>>> PING')) this.pingsSent += 1;
        if (msg.includes('<<< PONG')) this.pongsReceived += 1;
        if (msg.startsWith('chunk sent')) this.chunksSent += 1;
        log(`${this.name}: ${msg.length > 300 ? msg.slice(0, 300) + `… (${msg.length} chars)` : msg}`);
      },
      onConnect: (frame) => {
        this.connects.push({ ...frame.headers });
        if (this.onConnectHook) this.onConnectHook(frame);
      },
      onStompError: (frame) => this.stompErrors.push(describeFrame(frame)),
      onWebSocketClose: (evt) =>
        this.wsCloses.push({ code: evt.code, reason: String(evt.reason ?? ''), wasClean: evt.wasClean }),
      onWebSocketError: (evt) => this.wsErrors.push(String(evt?.message ?? evt?.error ?? evt)),
      onDisconnect: (frame) => this.disconnects.push({ ...frame.headers }),
      onUnhandledMessage: (msg) => this.unhandled.push(describeFrame(msg)),
      onUnhandledReceipt: (frame) => this.unhandled.push(describeFrame(frame)),
      onUnhandledFrame: (frame) => this.unhandled.push(describeFrame(frame)),
      ...(spec.config ?? {}),
    });
  }

  // Activate and wait for CONNECTED, an ERROR or the socket closing; true when connected.
  async connect(ms = 5000) {
    const before = this.connects.length;
    const errs = this.stompErrors.length;
    const closes = this.wsCloses.length;
    this.client.activate();
    await until(
      () => this.connects.length > before || this.stompErrors.length > errs || this.wsCloses.length > closes,
      ms,
    );
    // An ERROR is followed by the close; give it a moment so reports are complete.
    if (this.connects.length === before) await until(() => this.wsCloses.length > closes, 1000);
    return this.connects.length > before;
  }

  // Watch for a receipt before the frame that asks for it goes out; returns its id.
  watch(prefix = 'r') {
    const id = `${prefix}-${this.name}-${randomUUID()}`;
    this.client.watchForReceipt(id, (frame) => {
      this.receipts[id] = { ...frame.headers };
    });
    return id;
  }

  async waitReceipt(id, ms = 5000) {
    return until(() => id in this.receipts, ms);
  }

  // SUBSCRIBE with a receipt (so the broker has it before anyone publishes); messages go to `into`.
  async subscribe(destination, into, headers = {}, ms = 5000) {
    const receipt = this.watch('sub');
    const sub = this.client.subscribe(destination, (msg) => into.push(describeFrame(msg)), {
      ...headers,
      receipt,
    });
    const ok = await this.waitReceipt(receipt, ms);
    return { id: sub.id, receipt: ok ? this.receipts[receipt] : null };
  }

  publish(destination, headers, body) {
    this.client.publish({ destination, headers: headers ?? {}, ...bodyBytes(body) });
  }

  get closed() {
    return this.wsCloses.length > 0;
  }

  // Graceful DISCONNECT (stompjs waits for the RECEIPT), bounded.
  async close(ms = 3000) {
    try {
      await Promise.race([this.client.deactivate(), sleep(ms)]);
    } catch (err) {
      log(`${this.name}: deactivate failed: ${err}`);
    }
  }

  async kill() {
    try {
      await Promise.race([this.client.deactivate({ force: true }), sleep(1000)]);
    } catch (err) {
      log(`${this.name}: forced deactivate failed: ${err}`);
    }
  }

  report() {
    return {
      connects: this.connects,
      stompErrors: this.stompErrors,
      wsCloses: this.wsCloses,
      wsErrors: this.wsErrors,
      disconnects: this.disconnects,
      receipts: this.receipts,
      unhandled: this.unhandled,
      pingsSent: this.pingsSent,
      pongsReceived: this.pongsReceived,
      chunksSent: this.chunksSent,
      wsProtocols: this.wsProtocols,
      wsExtensions: this.wsExtensions,
      sockets: this.sockets,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios. Each returns a plain object merged into the result line.

const scenarios = {
  // Connect, report CONNECTED (or the ERROR), DISCONNECT with receipt.
  async connect(args) {
    const c = new Observed(args.url, args.client, 'client');
    const connected = await c.connect();
    if (connected) {
      if (args.holdMs) await sleep(args.holdMs);
      await c.close();
    }
    return { connected, client: c.report() };
  },

  // Subscriber subscribes (with receipt); publisher connects and SENDs each of args.sends; waits for
  // args.expect messages (or the publisher's ERROR/close), then args.settleMs more.
  async pubsub(args) {
    const received = [];
    const sub = new Observed(args.url, args.subscriber, 'subscriber');
    const pub = new Observed(args.url, args.publisher, 'publisher');
    const out = { received, subscriber: sub.report(), publisher: pub.report() };
    out.subscriberConnected = await sub.connect();
    if (!out.subscriberConnected) return out;
    out.subscription = await sub.subscribe(args.destination, received, args.subscribeHeaders ?? {});
    out.publisherConnected = await pub.connect();
    if (!out.publisherConnected) return out;
    out.sendReceipts = [];
    for (const send of args.sends) {
      const headers = { ...(send.headers ?? {}) };
      if (send.receipt) {
        headers.receipt = pub.watch('send');
        out.sendReceipts.push(headers.receipt);
      }
      pub.publish(send.destination ?? args.destination, headers, send.body);
    }
    const expect = args.expect ?? args.sends.length;
    await until(
      () => received.length >= expect || (args.stopOnPublisherError && pub.stompErrors.length > 0 && pub.closed),
      args.waitMs ?? 5000,
    );
    if (out.sendReceipts.length) {
      await until(() => out.sendReceipts.every((id) => id in pub.receipts), 3000);
    }
    if (args.settleMs) await sleep(args.settleMs);
    out.subscriberStillConnected = sub.client.connected;
    out.publisherStillConnected = pub.client.connected;
    await Promise.all([sub.close(), pub.close()]);
    out.subscriber = sub.report();
    out.publisher = pub.report();
    return out;
  },

  // Connect; then perform args.actions ({send: {destination, headers, body}} | {subscribe:
  // {destination, headers}}) without waiting; report ERROR frames and closes.
  async error(args) {
    const c = new Observed(args.url, args.client, 'client');
    const out = { connected: await c.connect() };
    if (out.connected) {
      for (const action of args.actions ?? []) {
        if (action.send) c.publish(action.send.destination, action.send.headers, action.send.body);
        if (action.subscribe) c.client.subscribe(action.subscribe.destination, () => {}, action.subscribe.headers ?? {});
      }
      await until(() => c.stompErrors.length > 0 && c.closed, args.waitMs ?? 5000);
      out.stillConnectedAfterActions = c.client.connected;
    }
    // A reconnect would show up as another socket; wait a little to catch it.
    await sleep(args.settleMs ?? 300);
    out.client = c.report();
    await c.kill();
    return out;
  },

  // /app/ping isolation: user A (one session) and user B (two sessions) subscribe
  // /user/queue/replies; B's first session pings; then A pings.
  async ping(args) {
    const boxes = { a: [], b1: [], b2: [] };
    const clients = {
      a: new Observed(args.url, args.a, 'a'),
      b1: new Observed(args.url, args.b, 'b1'),
      b2: new Observed(args.url, args.b, 'b2'),
    };
    const out = { connected: {}, subscriptions: {} };
    for (const [k, c] of Object.entries(clients)) {
      out.connected[k] = await c.connect();
      if (out.connected[k]) out.subscriptions[k] = await c.subscribe('/user/queue/replies', boxes[k]);
    }
    if (Object.values(out.connected).every(Boolean)) {
      clients.b1.publish('/app/ping', { 'correlation-id': args.correlationB }, { text: '' });
      await until(() => boxes.b1.length >= 1 && boxes.b2.length >= 1, args.waitMs ?? 3000);
      await sleep(args.settleMs ?? 500);
      out.afterB = { a: [...boxes.a], b1: [...boxes.b1], b2: [...boxes.b2] };
      clients.a.publish('/app/ping', { 'correlation-id': args.correlationA }, { text: '' });
      await until(() => boxes.a.length > out.afterB.a.length, args.waitMs ?? 3000);
      await sleep(args.settleMs ?? 500);
    }
    out.final = boxes;
    await Promise.all(Object.values(clients).map((c) => c.close()));
    out.clients = Object.fromEntries(Object.entries(clients).map(([k, c]) => [k, c.report()]));
    return out;
  },

  // Connect with heart-beats, stay idle args.idleMs, then prove the session still works (a
  // SUBSCRIBE receipt), then DISCONNECT.
  async heartbeat(args) {
    const c = new Observed(args.url, args.client, 'client');
    const out = { connected: await c.connect() };
    if (out.connected) {
      await sleep(args.idleMs ?? 4000);
      out.connectedAfterIdle = c.client.connected;
      out.closesDuringIdle = [...c.wsCloses];
      out.errorsDuringIdle = [...c.stompErrors];
      out.pingsSentDuringIdle = c.pingsSent;
      out.pongsReceivedDuringIdle = c.pongsReceived;
      if (out.connectedAfterIdle) {
        const sub = await c.subscribe(args.destination ?? '/topic/announcements', []);
        out.receiptAfterIdle = sub.receipt;
      }
      await c.close();
    }
    out.client = c.report();
    return out;
  },

  // Reconnect + resubscribe across a broker restart (driven by the caller):
  //   event subscribed n=1 → publish "before" → event ready (caller restarts the broker)
  //   → stompjs reconnects, onConnect subscribes again → event subscribed n=2 → publish "after".
  async reconnect(args) {
    const received = [];
    const sub = new Observed(args.url, args.subscriber, 'subscriber');
    const out = { subscriptions: [] };
    let subscribing = Promise.resolve();
    sub.onConnectHook = () => {
      subscribing = subscribing.then(async () => {
        const s = await sub.subscribe(args.destination, received);
        out.subscriptions.push(s);
        emit({ event: 'subscribed', n: sub.connects.length, receipt: s.receipt != null });
      });
    };
    const publishOnce = async (label) => {
      const pub = new Observed(args.url, args.publisher, `publisher-${label}`);
      const ok = await pub.connect();
      let receipt = null;
      if (ok) {
        const id = pub.watch('send');
        pub.publish(args.destination, { receipt: id, 'x-phase': label }, { text: label });
        receipt = (await pub.waitReceipt(id)) ? pub.receipts[id] : null;
        await pub.close();
      }
      return { connected: ok, receipt, report: pub.report() };
    };
    sub.client.activate();
    await until(() => out.subscriptions.length >= 1, 5000);
    out.before = await publishOnce('before');
    await until(() => received.some((m) => m.text === 'before'), 5000);
    emit({ event: 'ready', receivedBefore: received.length });
    // The caller now stops the broker and starts a new one on the same port.
    await until(() => sub.wsCloses.length >= 1, args.restartWaitMs ?? 20000);
    out.closedAt = Date.now() - T0;
    await until(() => out.subscriptions.length >= 2, args.restartWaitMs ?? 20000);
    out.resubscribedAt = Date.now() - T0;
    if (out.subscriptions.length >= 2) {
      out.after = await publishOnce('after');
      await until(() => received.some((m) => m.text === 'after'), 5000);
    }
    out.received = received;
    await sub.close();
    out.subscriber = sub.report();
    return out;
  },
};

// ---------------------------------------------------------------------------------------------

async function main() {
  const [name, rawArgs] = process.argv.slice(2);
  const args = JSON.parse(rawArgs ?? '{}');
  const scenario = scenarios[name];
  if (!scenario) {
    emit({ result: true, scenario: name, ok: false, exception: `unknown scenario ${name}` });
    process.exit(2);
  }
  const timeoutMs = args.timeoutMs ?? 20000;
  const timer = setTimeout(() => {
    emit({ result: true, scenario: name, ok: false, timeout: true, elapsedMs: Date.now() - T0 });
    process.exit(3);
  }, timeoutMs);
  try {
    const out = await scenario(args);
    emit({ result: true, scenario: name, ok: true, elapsedMs: Date.now() - T0, ...out });
    clearTimeout(timer);
    process.exit(0);
  } catch (err) {
    emit({ result: true, scenario: name, ok: false, exception: String(err?.stack ?? err) });
    process.exit(1);
  }
}

main();
