using System.Collections.Concurrent;
using Thermo.Analysis;

namespace Thermo.Trainer.Training;

/// <summary>
/// The one training that may write a run directory at a time. The lock is an exclusive open of
/// <c>.NAME.lock</c> beside the run directory (.NET takes it with <c>flock</c> on Linux), so the operating
/// system releases it when its holder dies, whatever the pid does afterwards; <c>.NAME.lock.holder</c> says
/// who holds it (pid, host, since when) for the message another process gives. It lies beside the directory, not in
/// it, so replacing the directory (<c>--force</c>) keeps it. Within one process the lock is re-entrant: a
/// training started by a protocol in this process under a verb's lock shares it.
/// </summary>
public sealed class RunLock : IDisposable
{
    static readonly ConcurrentDictionary<string, (FileStream Stream, int Holders)> Held = new();
    static readonly object Gate = new();
    /// <summary>The HResult .NET gives an open refused because another process holds the file's lock
    /// (ERROR_SHARING_VIOLATION on Windows); any other I/O error, such as a read-only file system, is not contention.</summary>
    const int SharingViolation = unchecked((int)0x80070020);
    /// <summary>On Unix .NET gives flock's errno, EWOULDBLOCK: 11 on Linux, 35 on macOS.</summary>
    const int WouldBlockLinux = 11, WouldBlockMac = 35;
    readonly string key;
    bool released;

    RunLock(string key) => this.key = key;

    /// <summary>The lock file of <paramref name="runDirectory"/>.</summary>
    public static string PathOf(string runDirectory)
    {
        var full = Path.GetFullPath(runDirectory).TrimEnd(Path.DirectorySeparatorChar);
        return Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.lock");
    }

    /// <summary>
    /// Takes the lock of <paramref name="runDirectory"/>, or raises <see cref="ArtifactException"/> naming
    /// the run and the process that holds it.
    /// </summary>
    public static RunLock Acquire(string runDirectory)
    {
        var path = PathOf(runDirectory);
        lock (Gate)
        {
            if (Held.TryGetValue(path, out var held))
            {
                Held[path] = (held.Stream, held.Holders + 1);
                return new RunLock(path);
            }
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            FileStream stream;
            try
            {
                stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException e) when (e.HResult is SharingViolation or WouldBlockLinux or WouldBlockMac)
            {
                throw new ArtifactException($"{runDirectory}: another training is writing this run ({Holder(path)}); wait for it to end or stop it", runDirectory);
            }
            // .NET reads a file under a shared flock, which the holder's exclusive one blocks: who holds the
            // lock is written to a file of its own.
            try { AtomicFiles.WriteAllText(path + ".holder", $"pid {Environment.ProcessId} on {Environment.MachineName} since {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm:ss} UTC\n"); }
            catch
            {
                stream.Dispose();
                throw;
            }
            Held[path] = (stream, 1);
            return new RunLock(path);
        }
    }

    /// <summary>Who holds the lock file at <paramref name="path"/>, as its holder wrote it.</summary>
    static string Holder(string path)
    {
        try
        {
            var text = File.ReadAllText(path + ".holder").Trim();
            return text.Length > 0 ? text : "a process that has not yet said who it is";
        }
        catch (IOException)
        {
            return "a process that has not yet said who it is";
        }
    }

    public void Dispose()
    {
        lock (Gate)
        {
            if (released) return;
            released = true;
            var (stream, holders) = Held[key];
            if (holders > 1) Held[key] = (stream, holders - 1);
            else
            {
                Held.TryRemove(key, out _);
                stream.Dispose();
            }
        }
    }
}
