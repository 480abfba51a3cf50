import net from 'node:net';

/** What the load generators of the HTTP sections share: raw keep-alive connections. */

export interface Answer {
  status: number;
  /** When the request was sent (performance.now()). */
  sentAt: number;
  ms: number;
}

/**
 * LoadConnection is one keep-alive connection sending one request at a time, with a parser
 * just good enough for the server's answers (status line and content-length), so the load
 * generator costs little next to the server.
 */
export class LoadConnection {
  readonly #socket: net.Socket;
  readonly #onAnswer: (answer: Answer, connection: LoadConnection) => void;
  #buffer = '';
  #sentAt = 0;
  busy = false;
  closed = false;

  constructor(socket: net.Socket, onAnswer: (answer: Answer, connection: LoadConnection) => void) {
    this.#socket = socket;
    this.#onAnswer = onAnswer;
    socket.setNoDelay(true);
    // latin1 keeps one character per byte, so content-length counts characters.
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.#read(chunk);
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {
      this.closed = true;
    });
  }

  send(request: string): void {
    this.busy = true;
    this.#sentAt = performance.now();
    this.#socket.write(request, 'latin1');
  }

  destroy(): void {
    this.#socket.destroy();
  }

  #read(chunk: string): void {
    this.#buffer += chunk;
    const headEnd = this.#buffer.indexOf('\r\n\r\n');
    if (headEnd < 0) return;
    const head = this.#buffer.slice(0, headEnd);
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    const end = headEnd + 4 + length;
    if (this.#buffer.length < end) return;
    const status = Number(head.slice(9, 12));
    this.#buffer = this.#buffer.slice(end);
    this.busy = false;
    this.#onAnswer({ status, sentAt: this.#sentAt, ms: performance.now() - this.#sentAt }, this);
  }
}

/** connect opens a connection to 127.0.0.1:`port`. */
export function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}
