using System.CommandLine;
using System.Net;
using System.Text.Json;
using Thermo.Pipeline.Watch;
using Thermo.Trainer;

namespace Thermo.Cli.Verbs;

/// <summary>
/// <c>thermo watch RUN...</c>: a live page of runs in training (or finished) — metrics, temperatures
/// per layer and unit as each epoch lands, window quantities and MSD on demand — served on 127.0.0.1
/// with a random token, read only, until Ctrl+C or SIGTERM (docs/guide/watch.md).
/// </summary>
public static class WatchVerb
{
    public static Command Build()
    {
        var runs = new Argument<string[]>("run") { Description = "Run directories, or directories holding runs (a reproduction, a sweep, a ledger): searched up to 3 levels below", Arity = ArgumentArity.OneOrMore };
        var port = new Option<int>("--port") { Description = "TCP port (0: a free one, printed)", DefaultValueFactory = _ => 8050 };
        var host = new Option<string>("--host") { Description = "Address to listen on; anything but loopback is reachable by others on the network (a warning says so)", DefaultValueFactory = _ => "127.0.0.1" };
        var pollMs = new Option<int>("--poll-ms") { Description = "Interval of the polling that backs up file-system notifications, in milliseconds", DefaultValueFactory = _ => 500 };
        var command = new Command("watch", "Serve a live page of runs in training: metrics, temperatures per layer and unit as epochs land, windows and MSD on demand")
        {
            runs, port, host, pollMs,
        };
        command.SetAction(parse =>
        {
            var portValue = parse.GetValue(port);
            if (portValue is < 0 or > 65535) throw new ThermoException($"--port: {portValue} is not a port (0..65535; 0 picks a free one)");
            var poll = parse.GetValue(pollMs);
            if (poll is < 10 or > 60_000) throw new ThermoException($"--poll-ms: {poll} is outside 10..60000");
            var hostValue = parse.GetValue(host)!;
            var address = WatchServer.Address(hostValue);
            void Log(string line) => Console.Error.WriteLine($"thermo watch: {line}");
            using var hub = new WatchHub(parse.GetValue(runs)!, TimeSpan.FromMilliseconds(poll), Log);
            hub.Start();
            var server = WatchServer.StartAsync(hub, hostValue, portValue, Log).GetAwaiter().GetResult();
            try
            {
                if (!IPAddress.IsLoopback(address))
                    Log($"warning: listening on {hostValue}, not loopback: anyone who can reach this machine and learns the token reads these runs");
                if (CliOutput.Json) Console.Out.WriteLine(JsonSerializer.Serialize(new { url = server.Url }));
                else
                {
                    Console.Out.WriteLine(server.Url);
                    if (!CliOutput.Quiet) Log($"{hub.Runs.Count} run{(hub.Runs.Count == 1 ? "" : "s")}; Ctrl+C stops");
                }
                Console.Out.Flush();
                server.WaitForShutdownAsync().GetAwaiter().GetResult();
            }
            finally
            {
                server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
            return ExitCodes.Ok;
        });
        return command;
    }
}
