/**
 * The TCP shell of a protocol listener (RTMP on :1935, RTSP on :8554): accepts sockets, keeps the live connections
 * in a set, ticks each one's deadlines on one shared timer, and on close ends them all before the server. The
 * protocol servers (rtmp/server.ts, rtsp/server.ts) only say how a socket becomes a connection.
 */
import net from 'node:net';

/**
 * How often the connections' deadlines (read timeouts, session timeouts, receiver reports) are checked: 1 s, fine
 * enough for timeouts counted in seconds (config `readTimeout`, RTSP session timeouts).
 */
export const TCP_LISTENER_TICK_MS = 1000;

/** What the listener needs from each connection it keeps. */
export interface TcpListenerConnection {
  /** checks the connection's deadlines; `nowMs` is `Date.now()` */
  tick(nowMs: number): void;
  /** ends the connection (the socket's 'close' then drops it from the set) */
  close(reason: string): void;
}

/** Options of {@link startTcpListener}. */
export interface TcpListenerOptions<C extends TcpListenerConnection> {
  /** default: every address */
  host?: string;
  /** 0 for an ephemeral port */
  port: number;
  /** default {@link TCP_LISTENER_TICK_MS} */
  tickMs?: number;
  /** makes the connection of an accepted socket; it is kept until the socket closes */
  accept(socket: net.Socket): C;
}

/** A bound listener and its live connections. */
export interface TcpListener<C> {
  /** the bound port (the ephemeral one when asked for 0) */
  readonly port: number;
  /** connections whose socket has not closed yet */
  readonly connections: Set<C>;
  /**
   * Stops the deadline timer, closes every connection with 'server shutting down' and stops accepting; resolves
   * once the server has closed (every socket gone).
   */
  close(): Promise<void>;
}

/**
 * Binds `opts.port` on `opts.host` and starts accepting.
 * @throws the listen error (EADDRINUSE, EACCES, …); nothing is left bound then
 */
export async function startTcpListener<C extends TcpListenerConnection>(opts: TcpListenerOptions<C>): Promise<TcpListener<C>> {
  const connections = new Set<C>();
  const server = net.createServer((socket) => {
    const c = opts.accept(socket);
    connections.add(c);
    socket.once('close', () => connections.delete(c));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const timer = setInterval(() => {
    const now = Date.now();
    for (const c of connections) c.tick(now);
  }, opts.tickMs ?? TCP_LISTENER_TICK_MS);
  timer.unref();
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(timer);
        for (const c of connections) c.close('server shutting down');
        server.close(() => resolve());
      }),
  };
}
