/** Raw-socket helpers for tests of the HTTP edge. */
import type net from 'node:net';

export /** Resolves once a response's head has arrived on `socket`. */
function headersIn(socket: net.Socket): Promise<true> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      if (text.includes('\r\n\r\n')) {
        socket.off('data', onData);
        resolve(true);
      }
    };
    socket.on('data', onData);
  });
}
