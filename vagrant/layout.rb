# The layout of the Vagrant cluster: each VM's name, address and the arguments of its
# provisioning (vagrant/provision.sh). Plain Ruby with no Vagrant in it, so that a test can
# print it: ruby -r ./vagrant/layout.rb -e 'puts AgentdLayout.to_json(5, "192.168.56")'
#
# Rules: the first three VMs (or all, if fewer) are the servers, started with the same
# --bootstrap-expect and joining one another; every later VM joins the servers. node<i>
# has the address <subnet>.<10+i>. Bad settings raise AgentdLayout::Error with the variable
# to fix in its message.
require "json"

module AgentdLayout
  SERVERS = 3         # Raft voters: three survive the loss of one
  MAX_NODES = 200     # host parts 11..210 of the /24
  GOSSIP_PORT = 7946  # agentd's defaults
  API_PORT = 7070

  class Error < StandardError; end

  # A whole number from an environment variable's text, between min and max.
  def self.number(variable, text, min, max)
    value = Integer(text.to_s.strip, 10)
    raise ArgumentError unless value.between?(min, max)
    value
  rescue ArgumentError, TypeError
    raise Error, "#{variable}=#{text.inspect}: expected a whole number from #{min} to #{max}"
  end

  # The first three octets of the private network, e.g. "192.168.56".
  def self.subnet(text)
    octets = text.to_s.split(".", -1)
    unless octets.size == 3 && octets.all? { |o| o.match?(/\A\d{1,3}\z/) && o.to_i <= 255 }
      raise Error, "AGENTD_SUBNET=#{text.inspect}: expected the first three octets of a /24, e.g. 192.168.56"
    end
    octets.join(".")
  end

  def self.nodes(count, subnet)
    raise Error, "#{count} VMs: expected 1 to #{MAX_NODES}" unless count.between?(1, MAX_NODES)
    servers = [count, SERVERS].min
    ip = ->(i) { "#{subnet}.#{10 + i}" }
    server_ips = (1..servers).map(&ip)
    agentctl = server_ips.map { |s| "#{s}:#{API_PORT}" }.join(",")
    (1..count).map do |i|
      args = ["--name", "node#{i}", "--address", ip.call(i)]
      (server_ips - [ip.call(i)]).each { |peer| args += ["--join", "#{peer}:#{GOSSIP_PORT}"] }
      args += ["--bootstrap-expect", servers.to_s] if i <= servers
      args += ["--agentctl-server", agentctl]
      { "name" => "node#{i}", "ip" => ip.call(i), "server" => i <= servers, "args" => args }
    end
  end

  def self.to_json(count, subnet)
    JSON.generate(nodes(count, subnet))
  end
end
