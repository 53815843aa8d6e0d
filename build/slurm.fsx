// A single-node Slurm for `dotnet fsi build.fsx cluster-test` (and `test`, where the machine allows).

module Slurm

#load "common.fsx"

open System
open System.Diagnostics
open System.IO
open System.Text.RegularExpressions
open Common

/// A single-node Slurm for the cluster tests, started the way a container allows (no systemd): the
/// daemons in the foreground (-D) as background processes, on ports of their own, with state under
/// artifacts/cluster/, stopped again by the process ids started here. Returns why it cannot run, or
/// None when it can: it needs root (to install the packages and run slurmd) and no Slurm already running.
let clusterBlocker () =
    let running (name: string) = Process.GetProcessesByName(name).Length > 0
    if Environment.UserName <> "root" then Some "not running as root (slurmd must run as root, and the packages are installed by apt-get)"
    elif running "slurmctld" || running "slurmd" then Some "a Slurm is already running on this machine; the test starts and stops its own"
    else None

let clusterTestSuite = "Thermo.Cli.Tests"

/// Starts the cluster, runs the cluster tests, stops what it started; returns (passed, failed).
let clusterTest () =
    let bin name = [ "/usr/sbin/" + name; "/usr/bin/" + name ] |> List.tryFind File.Exists
    if [ "slurmctld"; "slurmd"; "sbatch"; "munged" ] |> List.exists (fun n -> (bin n).IsNone) then
        log "installing Debian's slurm-wlm and munge for the cluster test"
        Environment.SetEnvironmentVariable("DEBIAN_FRONTEND", "noninteractive")
        run "apt-get" [ "update"; "-qq" ]
        run "apt-get" [ "install"; "-y"; "-qq"; "--no-install-recommends"; "slurm-wlm"; "munge" ]
    let home = Path.Combine(root, "artifacts", "cluster")
    if Directory.Exists home then Directory.Delete(home, true)
    for d in [ "state"; "spool"; "log" ] do Directory.CreateDirectory(Path.Combine(home, d)) |> ignore
    let host = (let _, out = runCapture "hostname" [ "-s" ] in out.Trim())
    let conf = Path.Combine(home, "slurm.conf")
    File.WriteAllLines(conf,
        [ "ClusterName=thermo-test"
          sprintf "SlurmctldHost=%s" host
          "SlurmUser=root"
          "SlurmdUser=root"
          "AuthType=auth/munge"
          sprintf "StateSaveLocation=%s" (Path.Combine(home, "state"))
          sprintf "SlurmdSpoolDir=%s" (Path.Combine(home, "spool"))
          sprintf "SlurmctldPidFile=%s" (Path.Combine(home, "slurmctld.pid"))
          sprintf "SlurmdPidFile=%s" (Path.Combine(home, "slurmd.pid"))
          // Ports of its own, so that it never answers for another cluster's clients.
          "SlurmctldPort=16817"
          "SlurmdPort=16818"
          // No cgroups in a container: processes tracked by the Linux process tree, no task binding.
          "ProctrackType=proctrack/linuxproc"
          "TaskPlugin=task/none"
          "JobAcctGatherType=jobacct_gather/none"
          "AccountingStorageType=accounting_storage/none"
          "JobCompType=jobcomp/none"
          "SelectType=select/cons_tres"
          "SelectTypeParameters=CR_CPU"
          "ReturnToService=2"
          "MpiDefault=none"
          "MinJobAge=600"
          sprintf "NodeName=%s CPUs=%d State=UNKNOWN" host Environment.ProcessorCount
          sprintf "PartitionName=debug Nodes=%s Default=YES MaxTime=INFINITE State=UP" host ])
    let started = Collections.Generic.List<Process>()
    /// A daemon in the foreground, its output to a log file; `exec` makes the shell's pid the daemon's.
    let startDaemon (name: string) (command: string) =
        let psi = ProcessStartInfo("bash", UseShellExecute = false)
        psi.ArgumentList.Add "-c"
        psi.ArgumentList.Add(sprintf "exec %s > '%s' 2>&1" command (Path.Combine(home, "log", name + ".log")))
        psi.Environment["SLURM_CONF"] <- conf
        let p = Process.Start psi
        started.Add p
        log (sprintf "started %s (pid %d)" name p.Id)
    let waitUntil (what: string) (check: unit -> bool) =
        let deadline = DateTime.UtcNow.AddSeconds 60.0
        while not (check ()) do
            if DateTime.UtcNow > deadline then failwithf "cluster test: %s did not happen within 60 s (logs in %s)" what (Path.Combine(home, "log"))
            Threading.Thread.Sleep 500
    let quiet (file: string) (args: string list) =
        let psi = ProcessStartInfo(file, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true)
        for a in args do psi.ArgumentList.Add a
        psi.Environment["SLURM_CONF"] <- conf
        use p = Process.Start psi
        let out = p.StandardOutput.ReadToEnd()
        p.StandardError.ReadToEnd() |> ignore
        p.WaitForExit()
        p.ExitCode, out
    try
        // munge: the packaged key, a daemon of our own unless one already answers.
        if quiet "bash" [ "-c"; "munge -n | unmunge" ] |> fst <> 0 then
            for d in [ "/run/munge"; "/var/log/munge"; "/var/lib/munge" ] do
                Directory.CreateDirectory d |> ignore
                run "chown" [ "munge:munge"; d ]
            if not (File.Exists "/etc/munge/munge.key") then run "runuser" [ "-u"; "munge"; "--"; "/usr/sbin/mungekey"; "--create" ]
            // setpriv execs (runuser would fork), so the pid started is munged's own.
            startDaemon "munged" "setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground"
            waitUntil "munge answering" (fun () -> quiet "bash" [ "-c"; "munge -n | unmunge" ] |> fst = 0)
        startDaemon "slurmctld" (sprintf "slurmctld -D -f '%s'" conf)
        waitUntil "slurmctld answering" (fun () -> (snd (quiet "scontrol" [ "ping" ])).Contains "UP")
        startDaemon "slurmd" (sprintf "slurmd -D -f '%s'" conf)
        waitUntil "the node idle" (fun () -> (snd (quiet "sinfo" [ "-h"; "-o"; "%t" ])).Trim() = "idle")
        log (sprintf "Slurm up: node %s, %d CPUs; running the cluster tests" host Environment.ProcessorCount)
        let project = Path.Combine(root, "tests", clusterTestSuite, clusterTestSuite + ".csproj")
        Environment.SetEnvironmentVariable("SLURM_CONF", conf)
        Environment.SetEnvironmentVariable("THERMO_SLURM_CLUSTER", "1")
        let code, output = runCapture "dotnet" [ "test"; project; "-c"; configuration; "--no-build"; "-nologo"; "--logger"; "console;verbosity=normal"; "--filter"; "Category=Cluster" ]
        Environment.SetEnvironmentVariable("THERMO_SLURM_CLUSTER", null)
        // The normal-verbosity summary: "Total tests: N", then "Passed: N" and, when some failed, "Failed: N".
        let summary = stripAnsi output
        let count (label: string) =
            let m = Regex.Match(summary, sprintf @"Total tests:[\s\S]*?%s:\s+(\d+)" label)
            if m.Success then int m.Groups[1].Value else 0
        let passed, failed = count "Passed", count "Failed"
        passed, failed + (if code <> 0 && failed = 0 then 1 else 0)
    finally
        // Jobs first (a failed test may leave trainings queued or running), then the daemons by pid.
        if started.Count > 0 then
            quiet "scancel" [ "--user"; Environment.UserName ] |> ignore
            let deadline = DateTime.UtcNow.AddSeconds 20.0
            while DateTime.UtcNow < deadline && (snd (quiet "squeue" [ "-h" ])).Trim() <> "" do Threading.Thread.Sleep 500
        for p in Seq.rev started do
            if not p.HasExited then
                p.Kill()
                p.WaitForExit 10000 |> ignore
        log (sprintf "stopped the %d daemons the cluster test started" started.Count)

/// The cluster test as a suite of `test`: (passed, failed), or (0, 0) with the reason logged where the
/// machine cannot run it.
let clusterSuite () =
    match clusterBlocker () with
    | Some why ->
        log (sprintf "cluster test SKIPPED: %s (the Slurm tests above were skipped too)" why)
        0, 0
    | None ->
        try clusterTest ()
        with e -> log (sprintf "cluster test FAILED to run: %s" e.Message); 0, 1
