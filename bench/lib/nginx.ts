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
export function nginxConfig(options: NginxOptions): string {
  const { dir } = options
  // As root, nginx drops its workers to this user; they only need to read `root`.
  const user = process.getuid?.() === 0 ? 'user nobody nogroup;\n' : ''
  return `${user}daemon off;
master_process on;
worker_processes ${options.workers};
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'error.log')} warn;

events {
    worker_connections 4096;
}

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
  await fs.mkdir(options.dir, { recursive: true })
  const configFile = path.join(options.dir, 'nginx.conf')
  await fs.writeFile(configFile, nginxConfig(options))
  // -e: the error log before the config is read (the default path may not be writable).
  const args = ['-p', options.dir, '-c', configFile, '-e', path.join(options.dir, 'error.log')]
  const check = spawnTracked(`${name} -t`, NGINX, [...args, '-t'])
  const { code } = await check.exited
  if (code !== 0) throw new Error(`nginx rejected its config ${configFile}:\n${check.output()}`)
  const entry = spawnTracked(name, NGINX, args)
  await waitForHttp(`http://127.0.0.1:${options.port}/r/ipxe/0`, entry, 15_000)
  return entry
}

export async function nginxVersion(): Promise<string> {
  const entry = spawnTracked('nginx -v', NGINX, ['-v'])
  await entry.exited
  return entry.output().trim().replace(/^nginx version:\s*/, '')
}
