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

const TURNS = Symbol('pipelined requests');

interface Turns {
  busy: boolean;
  waiting: [IncomingMessage, ServerResponse][];
}

type WithTurns = Socket & { [TURNS]?: Turns };

/** `listener`, called for one request of a connection at a time; `refuse` answers one beyond MAX_WAITING. */
export function oneAtATime(listener: RequestListener, refuse: (req: IncomingMessage, res: ServerResponse) => void, maxWaiting = MAX_WAITING): RequestListener {
  const run = (socket: WithTurns, turns: Turns, req: IncomingMessage, res: ServerResponse): void => {
    turns.busy = true;
    // 'close' comes once the answer is out, or when the connection is gone.
    res.once('close', () => {
      turns.busy = false;
      const next = turns.waiting.shift();
      // A connection that is gone takes the requests still waiting with it: none of them runs unheard.
      if (socket.destroyed) turns.waiting.length = 0;
      else if (next) run(socket, turns, next[0], next[1]);
    });
    listener(req, res);
  };
  return (req, res) => {
    const socket = req.socket as WithTurns;
    const turns = (socket[TURNS] ??= { busy: false, waiting: [] });
    if (!turns.busy) run(socket, turns, req, res);
    else if (turns.waiting.length < maxWaiting) turns.waiting.push([req, res]);
    else {
      // Its body is read and dropped, so the requests after it can be parsed.
      req.on('error', () => undefined);
      req.resume();
      refuse(req, res);
    }
  };
}
