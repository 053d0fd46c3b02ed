// Loaded into the js-ipfs daemon with NODE_OPTIONS=--require (tools/jsipfs/start.sh).
// Tests may talk to nothing but 127.0.0.0/8 and ::1, and js-ipfs has code paths
// that reach out on their own (preload nodes, DNSLink TXT lookups for names it
// takes as domains, the update notifier). This makes any such attempt fail at
// once instead of leaving the machine:
//  - TCP connects (net/http/https/ws) to a non-loopback host throw EACCES;
//  - dns.lookup of anything but localhost/an IP literal fails with ENOTFOUND;
//  - dns.resolve* (c-ares) is pointed at 127.0.0.1, where nothing answers;
//  - UDP sends to non-loopback addresses throw EACCES.
'use strict'
const net = require('net')
const dns = require('dns')
const dgram = require('dgram')

const loopback = (h) => h == null || h === '' || h === 'localhost' || h === '::1' ||
  /^127\./.test(h) || /^::ffff:127\./.test(h) || /^\[::1\]$/.test(h)
const refuse = (what, host) => {
  const e = new Error(`px loopback-only guard: refused ${what} to ${host}`)
  e.code = 'EACCES'
  return e
}

const connect = net.Socket.prototype.connect
net.Socket.prototype.connect = function (...args) {
  let o = args[0]
  if (Array.isArray(o)) o = o[0] // node's internal normalized form
  if (o !== null && typeof o === 'object') {
    if (o.path == null && !loopback(o.host)) throw refuse('TCP connect', o.host)
  } else if (typeof o !== 'string' || /^\d+$/.test(o)) { // (port[, host]); a string that is not a port is a pipe path
    if (typeof args[1] === 'string' && !loopback(args[1])) throw refuse('TCP connect', args[1])
  }
  return connect.apply(this, args)
}

const lookup = dns.lookup
dns.lookup = function (host, ...rest) {
  if (!loopback(host) && net.isIP(host) === 0) {
    const cb = rest[rest.length - 1]
    const e = new Error(`getaddrinfo ENOTFOUND ${host} (px loopback-only guard)`)
    e.code = 'ENOTFOUND'; e.hostname = host
    process.nextTick(() => cb(e))
    return {}
  }
  return lookup.call(this, host, ...rest)
}
const plookup = dns.promises.lookup
dns.promises.lookup = async function (host, ...rest) {
  if (!loopback(host) && net.isIP(host) === 0) {
    const e = new Error(`getaddrinfo ENOTFOUND ${host} (px loopback-only guard)`)
    e.code = 'ENOTFOUND'; e.hostname = host
    throw e
  }
  return plookup.call(this, host, ...rest)
}
dns.setServers(['127.0.0.1'])
dns.promises.setServers(['127.0.0.1'])

const send = dgram.Socket.prototype.send
dgram.Socket.prototype.send = function (...args) {
  for (const a of args) {
    if (typeof a === 'string' && net.isIP(a) !== 0 && !loopback(a)) throw refuse('UDP send', a)
  }
  return send.apply(this, args)
}
