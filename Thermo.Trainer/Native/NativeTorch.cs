using System.Runtime.InteropServices;

namespace Thermo.Trainer.Native;

/// <summary>
/// The few switches and facts of libtorch's native side that TorchSharp does not expose, reached
/// through libtorch_cpu's exported C++ symbols once TorchSharp has loaded it, and the C library's
/// <c>setenv</c> (.NET's <see cref="Environment.SetEnvironmentVariable(string, string)"/> keeps a
/// managed copy of the environment that native code never reads).
/// </summary>
public static class NativeTorch
{
    const string LibC = "libc";

    [DllImport(LibC, EntryPoint = "setenv", SetLastError = true)]
    static extern int SetEnv(string name, string value, int overwrite);

    /// <summary>Sets a variable in the process's native environment (what libtorch and oneDNN read).</summary>
    public static void SetNativeEnvironment(string name, string value)
    {
        if (SetEnv(name, value, 1) != 0) throw new InvalidOperationException($"setenv({name}) failed: errno {Marshal.GetLastPInvokeError()}");
        Environment.SetEnvironmentVariable(name, value);
    }

    [DllImport(LibC, EntryPoint = "mallopt")]
    static extern int MallOpt(int parameter, int value);

    const int M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3;

    /// <summary>Linux on x86-64: where glibc's mallopt parameters and the Itanium C++ ABI's way of
    /// returning a std::string (hidden result pointer in the first argument register) are as used here.</summary>
    static bool IsGlibcX64 => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;

    /// <summary>
    /// Keeps the C heap's freed memory in the process instead of handing it back to the kernel after
    /// every large tensor: glibc serves blocks above its (dynamic) mmap threshold with fresh mmaps and
    /// trims the heap top when it frees, so an evaluation loop that allocates and frees the same
    /// megabytes of activations pays page faults for all of them again on every batch. Fixes the mmap
    /// threshold at glibc's 64-bit maximum (32 MiB) and the trim threshold at 256 MiB. Returns whether
    /// glibc accepted both (other C libraries have no mallopt or other parameters).
    /// </summary>
    public static bool KeepFreedMemory()
    {
        if (!IsGlibcX64) return false;
        try { return MallOpt(M_MMAP_THRESHOLD, 32 << 20) == 1 & MallOpt(M_TRIM_THRESHOLD, 256 << 20) == 1; }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException) { return false; }
    }

    [DllImport(LibC, EntryPoint = "malloc_trim")]
    static extern int MallocTrim(nuint pad);

    /// <summary>Hands the C heap's free memory back to the kernel now (after a one-off peak such as the
    /// self-check's float64 passes), whatever <see cref="KeepFreedMemory"/> set.</summary>
    public static void ReturnFreedMemory()
    {
        if (!IsGlibcX64) return;
        try { MallocTrim(0); }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException) { }
    }

    static IntPtr library;

    /// <summary>libtorch_cpu's handle, loading TorchSharp's native stack first if needed.</summary>
    static IntPtr Library()
    {
        if (library != IntPtr.Zero) return library;
        TorchSharp.torch.InitializeDeviceType(TorchSharp.DeviceType.CPU);
        var dir = Path.GetDirectoryName(typeof(TorchSharp.torch).Assembly.Location)!;
        foreach (var candidate in new[] { Path.Combine(dir, "runtimes", "linux-x64", "native", "libtorch_cpu.so"), Path.Combine(dir, "libtorch_cpu.so") })
            if (File.Exists(candidate) && NativeLibrary.TryLoad(candidate, out library)) return library;
        if (NativeLibrary.TryLoad("libtorch_cpu.so", typeof(TorchSharp.torch).Assembly, DllImportSearchPath.AssemblyDirectory | DllImportSearchPath.SafeDirectories, out library))
            return library;
        throw new InvalidOperationException("libtorch_cpu.so could not be found beside TorchSharp");
    }

    static T Export<T>(string symbol) where T : Delegate =>
        Marshal.GetDelegateForFunctionPointer<T>(NativeLibrary.GetExport(Library(), symbol));

    delegate IntPtr GlobalContext();
    delegate void SetBool(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool value);
    delegate IntPtr ReturnsString(IntPtr result);

    /// <summary><c>at::globalContext().setUserEnabledMkldnn(enabled)</c>: whether ATen routes
    /// convolutions (and a few other ops) through oneDNN.</summary>
    public static void SetMkldnnEnabled(bool enabled) => SetContextFlag("_ZN2at7Context20setUserEnabledMkldnnEb", enabled);

    /// <summary><c>at::globalContext().setUserEnabledNNPACK(enabled)</c>.</summary>
    public static void SetNnpackEnabled(bool enabled) => SetContextFlag("_ZN2at7Context20setUserEnabledNNPACKEb", enabled);

    /// <summary>Calls the exported setter <paramref name="symbol"/> (a <c>void at::Context::f(bool)</c>) on <c>at::globalContext()</c>.</summary>
    static void SetContextFlag(string symbol, bool value) =>
        Export<SetBool>(symbol)(Export<GlobalContext>("_ZN2at13globalContextEv")(), value);

    /// <summary>Calls an exported <c>std::string f()</c> (Itanium ABI: the result is built in caller
    /// memory passed as a hidden first argument) and copies the text out. The string's own heap
    /// buffer, if any, is left alone: these are called a few times per process.</summary>
    static string CallStringFunction(string symbol)
    {
        if (!IsGlibcX64) return "?";
        var result = Marshal.AllocHGlobal(64);
        try
        {
            Export<ReturnsString>(symbol)(result);
            var data = Marshal.ReadIntPtr(result);
            var length = Marshal.ReadInt64(result, IntPtr.Size);
            return Marshal.PtrToStringUTF8(data, checked((int)length));
        }
        finally { Marshal.FreeHGlobal(result); }
    }

    /// <summary><c>at::get_cpu_capability()</c>: the instruction set ATen's own vectorised kernels dispatch to.</summary>
    public static string AtenCpuCapability() => CallStringFunction("_ZN2at18get_cpu_capabilityB5cxx11Ev");

    /// <summary><c>at::get_mkldnn_version()</c>: the oneDNN version compiled into libtorch.</summary>
    public static string OneDnnVersion() => CallStringFunction("_ZN2at18get_mkldnn_versionB5cxx11Ev");

    /// <summary><c>at::show_config()</c>: libtorch's build configuration.</summary>
    public static string BuildConfiguration() => CallStringFunction("_ZN2at11show_configB5cxx11Ev");
}
