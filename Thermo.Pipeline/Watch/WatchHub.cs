using System.Collections.Concurrent;
using System.Text.Json;
using System.Threading.Channels;
using Thermo.Analysis.Run;

namespace Thermo.Pipeline.Watch;

/// <summary>
/// The runs of one <c>thermo watch</c>, kept up to date: file-system notifications on each run's
/// directory (run.json) and snapshots/ wake one updater thread at once, and it also polls every
/// interval (notifications are lost on some file systems: NFS, a full inotify table). Each run that
/// gains an epoch is published to every subscriber (the server-sent events). Run ids are indexes into
/// <see cref="Runs"/>, fixed for the hub's life; runs that appear later below a given directory are
/// added at the end.
/// </summary>
public sealed class WatchHub : IDisposable
{
    /// <summary>How far below a given directory runs are looked for.</summary>
    public const int SearchDepth = 3;

    readonly TimeSpan poll;
    readonly AutoResetEvent wake = new(false);
    readonly CancellationTokenSource stop = new();
    readonly List<FileSystemWatcher> watchers = [];
    readonly ConcurrentDictionary<Channel<(int Id, int LastEpoch)>, byte> subscribers = new();
    Thread? updater;

    /// <summary>The paths given, searched again at every poll for runs that appeared below them.</summary>
    readonly IReadOnlyList<string> given;
    readonly Action<string> log;
    RunWatch[] runs;

    /// <summary>
    /// A hub over the runs of <paramref name="paths"/> (<see cref="Discover"/>), polling every
    /// <paramref name="poll"/> besides the notifications; <paramref name="log"/> takes one line per
    /// run that appears or fails.
    /// </summary>
    public WatchHub(IReadOnlyList<string> paths, TimeSpan poll, Action<string> log)
    {
        given = paths;
        this.poll = poll;
        this.log = log;
        runs = Discover(paths).Select(r => new RunWatch(r.Directory, r.Name, log)).ToArray();
    }

    /// <summary>The runs, by id: those found at the start, then those that appeared below a given
    /// directory later (a reproduction starting its next seed), each at the end.</summary>
    public IReadOnlyList<RunWatch> Runs => Volatile.Read(ref runs);

    /// <summary>
    /// The run directories of <paramref name="paths"/>: a path that is a run (run.json or snapshots/
    /// in it) is one; in any other directory, the runs up to <see cref="SearchDepth"/> levels below
    /// (a reproduction's runs/seed-N, a ledger's entries), named by their path below it. A path that is
    /// no directory, or holds no run, is kept as is, so it shows as a run in error rather than vanishing.
    /// </summary>
    public static IReadOnlyList<(string Directory, string Name)> Discover(IEnumerable<string> paths)
    {
        var found = new List<(string, string)>();
        static bool IsRun(string dir) => File.Exists(RunLayout.Manifest(dir)) || Directory.Exists(RunLayout.Snapshots(dir));
        foreach (var given in paths)
        {
            var path = Path.GetFullPath(given);
            var own = Path.GetFileName(path.TrimEnd('/'));
            if (!Directory.Exists(path) || IsRun(path)) { found.Add((path, own)); continue; }
            var below = new List<(string, string)>();
            void Walk(string dir, int depth)
            {
                if (depth > SearchDepth) return;
                IEnumerable<string> subs;
                try { subs = Directory.EnumerateDirectories(dir).Order(StringComparer.Ordinal).ToList(); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return; }
                foreach (var sub in subs)
                {
                    var name = Path.GetFileName(sub);
                    if (name.StartsWith('.') || new DirectoryInfo(sub).LinkTarget is not null) continue;
                    if (IsRun(sub)) below.Add((sub, Path.GetRelativePath(path, sub)));
                    else Walk(sub, depth + 1);
                }
            }
            Walk(path, 1);
            if (below.Count == 0) found.Add((path, own));
            else found.AddRange(below);
        }
        return found;
    }

    /// <summary>Starts the updater (a first update of every run at once) and the notifications.</summary>
    public void Start()
    {
        foreach (var run in Runs) Notify(run);
        updater = new Thread(Loop) { IsBackground = true, Name = "thermo-watch-updater" };
        updater.Start();
    }

    /// <summary>Wakes the updater when a file of <paramref name="run"/> (run.json, a snapshot) changes.</summary>
    void Notify(RunWatch run)
    {
        foreach (var dir in new[] { run.Directory, run.SnapshotsDirectory })
        {
            if (!Directory.Exists(dir)) continue;
            try
            {
                var watcher = new FileSystemWatcher(dir) { IncludeSubdirectories = false, NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size };
                watcher.Created += (_, _) => wake.Set();
                watcher.Changed += (_, _) => wake.Set();
                watcher.Renamed += (_, _) => wake.Set();
                watcher.EnableRaisingEvents = true;
                lock (watchers) watchers.Add(watcher);
            }
            catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
            {
                // Polling alone then (an inotify limit reached, a directory that vanished).
            }
        }
    }

    /// <summary>Adds the runs that have appeared below the given directories since the last look.</summary>
    void AddNewRuns()
    {
        var current = Runs;
        var known = current.Select(r => Path.GetFullPath(r.Directory)).ToHashSet(StringComparer.Ordinal);
        var added = Discover(given).Where(r => !known.Contains(r.Directory)).Select(r => new RunWatch(r.Directory, r.Name, log)).ToArray();
        if (added.Length == 0) return;
        foreach (var run in added)
        {
            log($"{run.Name}: found, now watched");
            Notify(run);
        }
        Volatile.Write(ref runs, [.. current, .. added]);
    }

    void Loop()
    {
        var token = stop.Token;
        while (!token.IsCancellationRequested)
        {
            AddNewRuns();
            var current = Runs;
            for (int id = 0; id < current.Count && !token.IsCancellationRequested; id++)
            {
                var run = current[id];
                if (run.Update()) Publish(id, run.LastEpoch);
            }
            WaitHandle.WaitAny([wake, token.WaitHandle], poll);
        }
    }

    void Publish(int id, int lastEpoch)
    {
        foreach (var channel in subscribers.Keys) channel.Writer.TryWrite((id, lastEpoch));
    }

    /// <summary>A subscription to the runs' new epochs: (run id, last epoch), until <see cref="Unsubscribe"/>.</summary>
    public Channel<(int Id, int LastEpoch)> Subscribe()
    {
        var channel = Channel.CreateBounded<(int, int)>(new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        subscribers[channel] = 0;
        return channel;
    }

    /// <summary>Ends a subscription.</summary>
    public void Unsubscribe(Channel<(int Id, int LastEpoch)> channel)
    {
        subscribers.TryRemove(channel, out _);
        channel.Writer.TryComplete();
    }

    /// <summary><c>/api/runs</c>: every run's id, name, status, message, last epoch and completeness.</summary>
    public void WriteRuns(Utf8JsonWriter json)
    {
        json.WriteStartObject();
        json.WriteStartArray("runs");
        var current = Runs;
        for (int id = 0; id < current.Count; id++) current[id].WriteSummary(json, id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>Stops the updater and the notifications.</summary>
    public void Dispose()
    {
        stop.Cancel();
        updater?.Join(TimeSpan.FromSeconds(5));
        lock (watchers) foreach (var w in watchers) w.Dispose();
        foreach (var channel in subscribers.Keys) channel.Writer.TryComplete();
    }
}
