import { promises as fs } from 'node:fs'
import path from 'node:path'
import { spawnTracked, waitForHttp, type Tracked } from './processes.ts'

export const NGINX = process.env.BENCH_NGINX ?? '/usr/sbin/nginx'

export interface NginxOptions {
  /** Folder for this instance's config, pid, logs and temp paths. */
  dir: string
  /** Document root holding the static copies of the engine's responses. */
  root: string
  port: number
  workers: number | 'auto'
}

/**
 * A minimal static-file nginx: keep-alive without a request cap, no access log, the same
 * Content-Type the engine sends for each endpoint, everything it writes kept in `dir`.
 */
/** The top of every benchmark nginx config: foreground master, its own pid/error log, 4096 connections. */
function nginxPreamble(dir: string, workers: NginxOptions['workers'], modules = ''): string {
  // As root, nginx drops its workers to this user; they only need to read what they serve.
  const user = process.getuid?.() === 0 ? 'user nobody nogroup;\n' : ''
  return `${modules}${user}daemon off;
master_process on;
worker_processes ${workers};
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'error.log')} warn;

events {
    worker_connections 4096;
}
`
}

export function nginxConfig(options: NginxOptions): string {
  const { dir } = options
  return `${nginxPreamble(dir, options.workers)}
http {
    access_log off;
    server_tokens off;
    types {}
    default_type text/plain;
    # The engine sends "; charset=utf-8" on both endpoints; so does this.
    charset utf-8;
    charset_types text/plain application/json;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 100000;
    client_body_temp_path ${path.join(dir, 'client_body')};
    proxy_temp_path ${path.join(dir, 'proxy')};
    fastcgi_temp_path ${path.join(dir, 'fastcgi')};
    uwsgi_temp_path ${path.join(dir, 'uwsgi')};
    scgi_temp_path ${path.join(dir, 'scgi')};

    server {
        listen 127.0.0.1:${options.port};
        root ${options.root};

        location /r/ipxe/ {
            default_type text/plain;
        }
        location /r/ignition/ {
            default_type application/json;
        }
    }
}
`
}

export async function startNginx(name: string, options: NginxOptions): Promise<Tracked> {
  return startNginxWithConfig(name, options.dir, nginxConfig(options), `http://127.0.0.1:${options.port}/r/ipxe/0`)
}

/** Writes `config` to `<dir>/nginx.conf`, checks it with `nginx -t`, starts nginx and waits for `probeUrl`. */
export async function startNginxWithConfig(name: string, dir: string, config: string, probeUrl: string): Promise<Tracked> {
  await fs.mkdir(dir, { recursive: true })
  const configFile = path.join(dir, 'nginx.conf')
  await fs.writeFile(configFile, config)
  // -e: the error log before the config is read (the default path may not be writable).
  const args = ['-p', dir, '-c', configFile, '-e', path.join(dir, 'error.log')]
  const check = spawnTracked(`${name} -t`, NGINX, [...args, '-t'])
  const { code } = await check.exited
  if (code !== 0) throw new Error(`nginx rejected its config ${configFile}:\n${check.output()}`)
  const entry = spawnTracked(name, NGINX, args)
  await waitForHttp(probeUrl, entry, 15_000)
  return entry
}

/** Debian's libnginx-mod-http-echo (pulled in by nginx-light): `echo_read_request_body` reads a body into memory. */
export const NGINX_ECHO_MODULE = process.env.BENCH_NGINX_ECHO_MODULE ?? '/usr/lib/nginx/modules/ngx_http_echo_module.so'

export interface NginxIngestOptions {
  dir: string
  port: number
  workers: number | 'auto'
  /** The location that takes the POSTs, e.g. /discovery. */
  path: string
  /** The fixed JSON answer. */
  answer: string
  /**
   * `read`: the echo module's `echo_read_request_body` reads every body into one in-memory buffer
   * (client_body_buffer_size) before answering, as an application server must. `discard`: a plain
   * `return 200`, with which nginx reads the body off the socket and drops it without buffering.
   */
  body: 'read' | 'discard'
  bodyLimit: number
}

/**
 * nginx as the transport ceiling for a POST endpoint: it takes the same requests (same size limit,
 * body read into memory), stores nothing and answers a fixed JSON document. `GET /healthz` is the probe.
 */
export function nginxIngestConfig(options: NginxIngestOptions): string {
  const { dir } = options
  const kib = `${Math.ceil(options.bodyLimit / 1024)}k`
  const answer = options.answer.replaceAll('\\', '\\\\').replaceAll("'", "\\'")
  const handler =
    options.body === 'read'
      ? `            echo_read_request_body;\n            echo -n '${answer}';`
      : `            return 200 '${answer}';`
  return `${nginxPreamble(dir, options.workers, options.body === 'read' ? `load_module ${NGINX_ECHO_MODULE};\n` : '')}
http {
    access_log off;
    server_tokens off;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 100000;
    client_max_body_size ${kib};
    client_body_buffer_size ${kib};
    client_body_in_single_buffer on;
    client_body_temp_path ${path.join(dir, 'client_body')};
    proxy_temp_path ${path.join(dir, 'proxy')};
    fastcgi_temp_path ${path.join(dir, 'fastcgi')};
    uwsgi_temp_path ${path.join(dir, 'uwsgi')};
    scgi_temp_path ${path.join(dir, 'scgi')};

    server {
        listen 127.0.0.1:${options.port};

        location = ${options.path} {
            default_type application/json;
${handler}
        }
        location = /healthz {
            default_type text/plain;
            return 200 'ok';
        }
    }
}
`
}

export async function nginxVersion(): Promise<string> {
  const entry = spawnTracked('nginx -v', NGINX, ['-v'])
  await entry.exited
  return entry.output().trim().replace(/^nginx version:\s*/, '')
}
