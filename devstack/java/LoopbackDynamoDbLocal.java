// Starts DynamoDB Local bound to one address (127.0.0.1 by default) instead of all
// interfaces. DynamoDBLocal.jar has no host option: its DynamoDBProxyServer builds a
// Jetty `new Server(port)`, whose connector binds the wildcard address. This launcher
// lets DynamoDB Local parse its own arguments and build its server, sets the host on
// the Jetty connectors before they open, then starts it.
//
// Everything goes through reflection so the file compiles with a bare JDK (no jars on
// the classpath) and fails loudly, not open, if a DynamoDB Local release renames things.
//
//   java -cp <cache dir>:DynamoDBLocal.jar -Dkiln.dynamodb.host=127.0.0.1 \
//        LoopbackDynamoDbLocal -inMemory -port 8000 -disableTelemetry

import java.lang.reflect.Field;
import java.lang.reflect.Method;

public final class LoopbackDynamoDbLocal {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("kiln.dynamodb.host", "127.0.0.1");
        Class<?> runner = Class.forName("software.amazon.dynamodb.services.local.main.ServerRunner");
        Object proxy = runner.getMethod("createServerFromCommandLineArgs", String[].class)
                .invoke(null, (Object) args);
        Field serverField = proxy.getClass().getDeclaredField("server");
        serverField.setAccessible(true);
        Object server = serverField.get(proxy);
        Object[] connectors = (Object[]) server.getClass().getMethod("getConnectors").invoke(server);
        if (connectors.length == 0) {
            throw new IllegalStateException("DynamoDB Local's Jetty server has no connector");
        }
        for (Object connector : connectors) {
            Method setHost = connector.getClass().getMethod("setHost", String.class);
            setHost.invoke(connector, host);
        }
        proxy.getClass().getMethod("start").invoke(proxy);
        System.err.println("kiln: DynamoDB Local listening on " + host + " only");
    }
}
