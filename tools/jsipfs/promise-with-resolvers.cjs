// Node 20 lacks Promise.withResolvers (Node 22+), which js-ipfs 0.66's newer
// transitive dependencies call. Loaded with NODE_OPTIONS=--require <this file>.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () { let resolve, reject; const promise = new Promise((res, rej) => { resolve = res; reject = rej }); return { promise, resolve, reject } }
}
