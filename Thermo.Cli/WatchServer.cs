using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Thermo.Analysis;
using Thermo.Pipeline.Watch;

namespace Thermo.Cli;

/// <summary>
/// The HTTP side of <c>thermo watch</c>: Kestrel and minimal APIs over a <see cref="WatchHub"/>, read
/// only. Every request must carry the session's random token (header <c>X-Thermo-Token</c> or query
/// <c>token</c>, compared in constant time) and a Host header naming this server (127.0.0.1, localhost
/// or --host, with the port: no DNS rebinding); anything but GET/HEAD is 405; a path with <c>..</c>, a
/// percent-escape or a backslash, and any unknown route, is 404. Request text never reaches the file
/// system: run ids index the hub's list, asset names a fixed dictionary.
/// </summary>
public sealed class WatchServer : IAsyncDisposable
{
    /// <summary>The request header that carries the token.</summary>
    public const string TokenHeader = "X-Thermo-Token";

    /// <summary>How often an idle event stream gets a comment line, so proxies and tunnels keep it open.</summary>
    public static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(15);

    readonly WebApplication app;
    readonly WatchHub hub;
    readonly byte[] token;
    readonly Action<string> log;
    string[] allowedHosts = [];

    WatchServer(WebApplication app, WatchHub hub, string token, Action<string> log)
    {
        this.app = app;
        this.hub = hub;
        this.token = Encoding.ASCII.GetBytes(token);
        this.log = log;
        Token = token;
    }

    /// <summary>The session's token: 32 random bytes, URL-safe base64.</summary>
    public string Token { get; }

    /// <summary>The port the server listens on (the one the system chose for --port 0).</summary>
    public int Port { get; private set; }

    /// <summary>The page's address, token included.</summary>
    public string Url { get; private set; } = "";

    /// <summary>True when <paramref name="address"/> is a loopback address.</summary>
    public static bool IsLoopback(IPAddress address) => IPAddress.IsLoopback(address);

    /// <summary>The address to bind for <paramref name="host"/>: an IP address as given, localhost as 127.0.0.1, a name resolved.</summary>
    public static IPAddress Address(string host)
    {
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return IPAddress.Loopback;
        if (IPAddress.TryParse(host.Trim('[', ']'), out var ip)) return ip;
        try
        {
            return Dns.GetHostAddresses(host).FirstOrDefault() ?? throw Unresolved(host);
        }
        catch (System.Net.Sockets.SocketException) { throw Unresolved(host); }
    }

    static Thermo.Trainer.ThermoException Unresolved(string host) => new($"--host: cannot resolve '{host}' to an address");

    /// <summary>Starts serving <paramref name="hub"/> on <paramref name="host"/>:<paramref name="port"/> (0: a free port).</summary>
    public static async Task<WatchServer> StartAsync(WatchHub hub, string host, int port, Action<string> log)
    {
        var address = Address(host);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Listen(address, port);
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));
        var tokenText = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var server = new WatchServer(builder.Build(), hub, tokenText, log);
        server.Configure();
        await server.app.StartAsync();
        var bound = server.app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Port = new Uri(bound).Port;
        var urlHost = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]" : host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ? "127.0.0.1" : host;
        server.allowedHosts = new[] { "127.0.0.1", "localhost", urlHost, host }
            .Select(h => h + ":" + server.Port.ToString(CultureInfo.InvariantCulture)).Distinct(StringComparer.OrdinalIgnoreCase).ToArray();
        server.Url = $"http://{urlHost}:{server.Port}/?token={tokenText}";
        return server;
    }

    void Configure()
    {
        app.Use(async (context, next) =>
        {
            var response = context.Response;
            response.Headers.CacheControl = "no-store";
            response.Headers.XContentTypeOptions = "nosniff";
            response.Headers.XFrameOptions = "DENY";
            response.Headers["Referrer-Policy"] = "no-referrer";
            if (!allowedHosts.Contains(context.Request.Host.Value ?? "", StringComparer.OrdinalIgnoreCase))
            {
                await Plain(context, StatusCodes.Status403Forbidden, "forbidden: unknown Host");
                return;
            }
            // The page's own script, style sheet and charting library are public files (no run data):
            // the browser fetches them for <script src> and <link href>, which cannot carry the token.
            var path = context.Request.Path.Value ?? "";
            bool publicAsset = path.Length > 1 && path.IndexOf('/', 1) < 0 && WatchPage.Asset(path[1..]) is not null;
            if (!publicAsset && !TokenMatches(context.Request))
            {
                await Plain(context, StatusCodes.Status403Forbidden, "forbidden: missing or wrong token");
                return;
            }
            var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? "";
            var rawPath = raw.Split('?', 2)[0];
            if (rawPath.Contains("..", StringComparison.Ordinal) || rawPath.Contains('%') || rawPath.Contains('\\') || !rawPath.StartsWith('/')
                || (context.Request.Path.Value ?? "").Contains("..", StringComparison.Ordinal))
            {
                await Plain(context, StatusCodes.Status404NotFound, "not found");
                return;
            }
            if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
            {
                response.Headers.Allow = "GET, HEAD";
                await Plain(context, StatusCodes.Status405MethodNotAllowed, "method not allowed: this server is read-only");
                return;
            }
            try
            {
                await next(context);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                log($"{context.Request.Path}: {e.Message.ReplaceLineEndings(" ")}");
                if (!response.HasStarted) await Json(context, StatusCodes.Status500InternalServerError, w => Error(w, e.Message));
            }
        });
        string[] get = [HttpMethods.Get, HttpMethods.Head];
        app.MapMethods("/", get, Index);
        // Beside the page, as its relative <script> and <link> name them.
        app.MapMethods("/{name}", get, (HttpContext context, string name) => WatchPage.Asset(name) is { } asset
            ? Results.Bytes(asset.Bytes, asset.ContentType)
            : Results.Text("not found", "text/plain", statusCode: StatusCodes.Status404NotFound));
        app.MapMethods("/api/runs", get, (HttpContext context) => Json(context, StatusCodes.Status200OK, hub.WriteRuns));
        app.MapMethods("/api/runs/{id}", get, (HttpContext context, string id) => RunSeries(context, id));
        app.MapMethods("/api/runs/{id}/window", get, (HttpContext context, string id) => Window(context, id));
        app.MapMethods("/api/events", get, Events);
        app.MapFallback((HttpContext context) => Plain(context, StatusCodes.Status404NotFound, "not found"));
    }

    bool TokenMatches(HttpRequest request)
    {
        string? given = request.Headers.TryGetValue(TokenHeader, out var header) && header.Count == 1 ? header[0]
            : request.Query.TryGetValue("token", out var query) && query.Count == 1 ? query[0] : null;
        if (given is null) return false;
        var bytes = Encoding.UTF8.GetBytes(given);
        // Equal lengths compared in constant time; a length that differs says nothing about the token's bytes.
        return bytes.Length == token.Length && CryptographicOperations.FixedTimeEquals(bytes, token);
    }

    async Task Index(HttpContext context)
    {
        context.Response.Headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
        context.Response.ContentType = "text/html; charset=utf-8";
        var page = WatchPage.Index() ?? Encoding.UTF8.GetBytes(WatchPage.Placeholder(hub));
        await context.Response.Body.WriteAsync(page);
    }

    RunWatch? Run(string id) =>
        int.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var index) && index < hub.Runs.Count && id == index.ToString(CultureInfo.InvariantCulture)
            ? hub.Runs[index] : null;

    Task RunSeries(HttpContext context, string id)
    {
        if (Run(id) is not { } run) return Plain(context, StatusCodes.Status404NotFound, "not found");
        int since = -1;
        if (context.Request.Query.TryGetValue("since", out var text) && !int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out since))
            return Json(context, StatusCodes.Status400BadRequest, w => Error(w, "since: not an epoch number"));
        return Json(context, StatusCodes.Status200OK, w => run.WriteSeries(w, id, since));
    }

    async Task Window(HttpContext context, string id)
    {
        if (Run(id) is not { } run)
        {
            await Plain(context, StatusCodes.Status404NotFound, "not found");
            return;
        }
        var query = context.Request.Query;
        bool Epoch(string name, out int value) =>
            int.TryParse(query[name].ToString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);
        if (!Epoch("from", out var from) || !Epoch("to", out var to))
        {
            await Json(context, StatusCodes.Status400BadRequest, w => Error(w, "from and to: give the window's epochs as integers, from < to"));
            return;
        }
        var layer = query.TryGetValue("layer", out var l) && l.Count == 1 && l[0] is { Length: > 0 } name ? name : null;
        WindowResult result;
        try
        {
            // The engine reads the window's files: off the request thread's hot path, once per (window, layer).
            result = await Task.Run(() => run.Window(from, to, layer), context.RequestAborted);
        }
        catch (Exception e) when (e is SettingException or ArtifactException or IOException)
        {
            await Json(context, StatusCodes.Status400BadRequest, w => Error(w, e.Message.ReplaceLineEndings(" ")));
            return;
        }
        await Json(context, StatusCodes.Status200OK, result.Write);
    }

    async Task Events(HttpContext context)
    {
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers["X-Accel-Buffering"] = "no";
        var stopping = app.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping);
        var cancel = linked.Token;
        var channel = hub.Subscribe();
        try
        {
            var text = new StringBuilder(": thermo watch\n\n");
            // Where each run stands now, so a page that connects late misses nothing.
            for (int i = 0; i < hub.Runs.Count; i++)
                if (hub.Runs[i].LastEpoch >= 0) text.Append(EpochEvent(i, hub.Runs[i].LastEpoch));
            await response.WriteAsync(text.ToString(), cancel);
            await response.Body.FlushAsync(cancel);
            while (!cancel.IsCancellationRequested)
            {
                using var beat = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                beat.CancelAfter(Heartbeat);
                bool more;
                try { more = await channel.Reader.WaitToReadAsync(beat.Token); }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                    await response.WriteAsync(": heartbeat\n\n", cancel);
                    await response.Body.FlushAsync(cancel);
                    continue;
                }
                if (!more) break;
                text.Clear();
                while (channel.Reader.TryRead(out var item)) text.Append(EpochEvent(item.Id, item.LastEpoch));
                await response.WriteAsync(text.ToString(), cancel);
                await response.Body.FlushAsync(cancel);
            }
        }
        catch (OperationCanceledException) { }
        catch (IOException) { }
        finally { hub.Unsubscribe(channel); }
    }

    static string EpochEvent(int id, int lastEpoch) =>
        FormattableString.Invariant($"event: epoch\ndata: {{\"id\":\"{id}\",\"last_epoch\":{lastEpoch}}}\n\n");

    static void Error(Utf8JsonWriter json, string message)
    {
        json.WriteStartObject();
        json.WriteString("error", message);
        json.WriteEndObject();
    }

    static async Task Json(HttpContext context, int status, Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer)) write(json);
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json; charset=utf-8";
        await context.Response.Body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length));
    }

    static Task Plain(HttpContext context, int status, string text)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync(text + "\n");
    }

    /// <summary>Until Ctrl+C or SIGTERM.</summary>
    public Task WaitForShutdownAsync() => app.WaitForShutdownAsync();

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}
