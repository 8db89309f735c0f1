# puma's configuration for the puma example: the app is a block, so no rack gem is
# needed; it answers with the release's VERSION file, read once at boot.
version = File.read(File.join(__dir__, "VERSION")).strip

app do |env|
  [200, { "Content-Type" => "text/plain", "X-Version" => version }, ["#{version}\n"]]
end

# The sockets come from liveswap as LISTEN_FDS: use whatever was passed, bind nothing.
bind_to_activated_sockets "only"
workers Integer(ENV.fetch("PUMA_WORKERS", "2"))
threads 1, 4
# On SIGTERM puma stops accepting and finishes the requests it has. With its reactor
# (queue_requests, the default) a connection accepted but not yet read is closed
# unanswered at shutdown; without it, a thread reads each connection it accepts.
queue_requests false
worker_shutdown_timeout 10
