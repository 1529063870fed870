// A module outside atomic-map's, as a user's would be: it imports the Go package
// and gets the C library from pkg-config (module amap). ffi/tests/run-go-outside.sh
// copies it out of the repository and adds a replace directive pointing at the
// checkout's ffi/go, only to obtain the package's Go source without a module proxy.
module example.com/tenants

go 1.19

require atomic-map.local/go v0.0.0
