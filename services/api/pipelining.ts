/**
 * Requests pipelined on one connection are handled one at a time, in order: their answers go out
 * in that order anyway. Node hands the listener every request it parses at once, and stops reading
 * only once answers pile up unsent; answers that wait on Postgres pile up later, so a client that
 * pipelined hundreds of GET /tasks/{id} and read nothing had them all run at once (every pool
 * connection taken, and each answer held in memory: 430 MB for one connection under a 96 MB heap).
 * Up to MAX_WAITING requests wait their turn; one beyond is refused at once (503), which costs no
 * work, and those small answers piling up make Node stop reading the connection.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** Requests of one connection parsed while another of its requests is handled. */
export const MAX_WAITING = 32;

const CONN = Symbol('pipelined requests');

interface Conn {
  /** The response of the request being handled. */
  current: ServerResponse | null;
  waiting: [IncomingMessage, ServerResponse][];
  /** Every response of the connection not closed yet (handled, waiting or refused). */
  open: Set<ServerResponse>;
  /** Set once the connection failed (afterAnswered): what is still owed an answer, and what then. */
  failed?: { owed: Set<ServerResponse>; then: () => void };
}

type WithConn = Socket & { [CONN]?: Conn };

/** `listener`, called for one request of a connection at a time; `refuse` answers one beyond MAX_WAITING. */
export function oneAtATime(listener: RequestListener, refuse: (req: IncomingMessage, res: ServerResponse) => void, maxWaiting = MAX_WAITING): RequestListener {
  const closed = (socket: WithConn, conn: Conn, res: ServerResponse): void => {
    conn.open.delete(res);
    if (conn.current === res) {
      conn.current = null;
      // A connection that is gone takes the requests still waiting with it: none of them runs unheard.
      if (socket.destroyed) conn.waiting.length = 0;
      let next = conn.waiting.shift();
      // Once the connection failed, only the requests it owes an answer run.
      while (next && conn.failed && !conn.failed.owed.has(next[1])) next = conn.waiting.shift();
      if (next) {
        conn.current = next[1];
        listener(next[0], next[1]);
      }
    }
    if (conn.failed?.owed.delete(res) && conn.failed.owed.size === 0) conn.failed.then();
  };
  return (req, res) => {
    const socket = req.socket as WithConn;
    const conn = (socket[CONN] ??= { current: null, waiting: [], open: new Set() });
    // Parsed after the connection failed: never handled (its answer is the failure's), and no more is read.
    if (conn.failed) {
      socket.pause();
      return;
    }
    conn.open.add(res);
    // 'close' comes once the answer is out, or when the connection is gone.
    res.once('close', () => closed(socket, conn, res));
    if (conn.current === null) {
      conn.current = res;
      listener(req, res);
    } else if (conn.waiting.length < maxWaiting) conn.waiting.push([req, res]);
    else {
      // Its body is read and dropped, so the requests after it can be parsed.
      req.on('error', () => undefined);
      req.resume();
      refuse(req, res);
    }
  };
}

/**
 * For a connection that failed (bad bytes, headers too large, a request too slow): runs `then`
 * once every request it received whole has been answered, so the failure's answer comes after
 * theirs instead of being taken for the answer to one of them (whose task was created all the
 * same). A request not received whole is not waited for (nor run, if it was still waiting), and
 * no request parsed from now on is handled.
 * Returns false, and does nothing, when the connection had failed already.
 */
export function afterAnswered(socket: Socket, then: () => void): boolean {
  const conn = ((socket as WithConn)[CONN] ??= { current: null, waiting: [], open: new Set() });
  if (conn.failed) return false;
  const owed = new Set([...conn.open].filter((res) => res.req.complete));
  conn.failed = { owed, then };
  if (owed.size === 0) then();
  return true;
}
