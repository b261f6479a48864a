// Headwater from Go with nothing but protos/ and a connection string (docs/clients.md).
//
// Generate the contracts (the go_package of every proto is headwater/gen/go/headwater/v1):
//
//	protoc -Iprotos --go_out=$GOPATH/src --go-grpc_out=$GOPATH/src protos/headwater/v1/*.proto
//
// then: HEADWATER_CONNECTION_STRING="$(headwater connection-string)" go run .
//
// Signs a SAS token, finds every service from the namespace endpoint (GetNamespace),
// creates a hub, publishes, reads, checkpoints, registers a schema, runs a job into a
// memory sink, reads its rows and decodes an error. Prints one JSON object.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	hw "headwater/gen/go/headwater/v1"
)

type connection struct{ namespace, address, keyName, key string }

func parseConnectionString(text string) (connection, error) {
	parts := map[string]string{}
	for _, piece := range strings.Split(text, ";") {
		if i := strings.Index(piece, "="); i > 0 {
			parts[strings.ToLower(strings.TrimSpace(piece[:i]))] = strings.TrimSpace(piece[i+1:])
		}
	}
	m := regexp.MustCompile(`^(\w+)://([^/]+)`).FindStringSubmatch(parts["endpoint"])
	if m == nil {
		return connection{}, fmt.Errorf("connection string needs Endpoint=headwater://host:port/")
	}
	return connection{m[1] + "://" + m[2] + "/", m[2], parts["sharedaccesskeyname"], parts["sharedaccesskey"]}, nil
}

// sasToken: SharedAccessSignature sr=<url-encoded resource>&sig=<url-encoded base64
// HMAC-SHA256(key, url_encode(resource) + "\n" + expiry)>&se=<expiry>&skn=<policy>.
func sasToken(resource, keyName, key string, ttl time.Duration) string {
	expiry := fmt.Sprint(time.Now().Add(ttl).Unix())
	sr := url.QueryEscape(resource)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(sr + "\n" + expiry))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return fmt.Sprintf("SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s", sr, url.QueryEscape(sig), expiry,
		url.QueryEscape(keyName))
}

// sas signs every call (gRPC per-RPC credentials).
type sas struct{ conn connection }

func (s sas) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	return map[string]string{"authorization": sasToken(s.conn.namespace, s.conn.keyName, s.conn.key, time.Hour)}, nil
}
func (s sas) RequireTransportSecurity() bool { return false }

func dial(address string, conn connection) *grpc.ClientConn {
	cc, err := grpc.Dial(address, grpc.WithInsecure(), grpc.WithPerRPCCredentials(sas{conn}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	check(err)
	return cc
}

// decodeError: the status details hold a google.rpc.ErrorInfo (domain "headwater").
func decodeError(err error) map[string]interface{} {
	st := status.Convert(err)
	out := map[string]interface{}{"code": st.Code().String(), "message": st.Message()}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			out["reason"], out["domain"], out["metadata"] = info.Reason, info.Domain, info.Metadata
		}
	}
	return out
}

func check(err error) {
	if err != nil {
		b, _ := json.Marshal(decodeError(err))
		fmt.Fprintf(os.Stderr, "error: %s\n", b)
		os.Exit(1)
	}
}

func main() {
	conn, err := parseConnectionString(os.Getenv("HEADWATER_CONNECTION_STRING"))
	check(err)
	run := os.Getenv("HEADWATER_RUN_ID")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// 1. The namespace endpoint says where every service is.
	entry := dial(conn.address, conn)
	nsResp, err := hw.NewNamespaceServiceClient(entry).GetNamespace(ctx, &hw.GetNamespaceRequest{})
	check(err)
	ns := nsResp.Namespace
	ingestion := hw.NewIngestionServiceClient(dial(ns.IngestionAddress, conn))
	registry := hw.NewSchemaRegistryServiceClient(dial(ns.RegistryAddress, conn))
	processing := hw.NewProcessingServiceClient(dial(ns.ProcessingAddress, conn))
	sink := hw.NewSinkServiceClient(dial(ns.SinkAddress, conn))

	// 2. A hub with one partition; publish a batch.
	hub := "go-trips-" + run
	_, err = ingestion.CreateHub(ctx, &hw.CreateHubRequest{HubId: hub, Hub: &hw.Hub{PartitionCount: 1}})
	check(err)
	var events []*hw.EventData
	for i := 0; i < 10; i++ {
		body, _ := json.Marshal(map[string]interface{}{"tripId": fmt.Sprintf("g%d", i), "fare": 10 + i})
		events = append(events, &hw.EventData{Body: body, ContentType: "application/json"})
	}
	_, err = ingestion.PublishEvents(ctx, &hw.PublishEventsRequest{Hub: "hubs/" + hub, Events: events})
	check(err)

	// 3. Read partition 0 from the earliest event, then checkpoint the last one.
	stream, err := ingestion.ReadEvents(ctx, &hw.ReadEventsRequest{
		Hub: "hubs/" + hub, PartitionId: "0", ConsumerGroup: "$Default",
		EventPosition: &hw.EventPosition{Position: &hw.EventPosition_Earliest{Earliest: true}},
		MaxBatchSize:  1000, MaxWait: durationpb.New(time.Second)})
	check(err)
	var read []*hw.ReceivedEvent
	for len(read) < len(events) {
		resp, err := stream.Recv()
		check(err)
		read = append(read, resp.Events...)
	}
	last := read[len(read)-1]
	_, err = ingestion.UpdateCheckpoint(ctx, &hw.UpdateCheckpointRequest{Checkpoint: &hw.Checkpoint{
		Hub: hub, ConsumerGroup: "$Default", PartitionId: "0", Offset: last.Offset, SequenceNumber: last.SequenceNumber}})
	check(err)

	// 4. Register an Avro schema.
	group := "go-" + run
	_, err = registry.CreateSchemaGroup(ctx, &hw.CreateSchemaGroupRequest{GroupId: group,
		Format: hw.SchemaFormat_SCHEMA_FORMAT_AVRO, Compatibility: hw.CompatibilityMode_COMPATIBILITY_MODE_BACKWARD})
	check(err)
	registered, err := registry.RegisterSchema(ctx, &hw.RegisterSchemaRequest{GroupName: group, Name: "demo.Trip",
		Format:     hw.SchemaFormat_SCHEMA_FORMAT_AVRO,
		Definition: `{"type":"record","name":"Trip","namespace":"demo","fields":[{"name":"tripId","type":"string"}]}`})
	check(err)

	// 5. A memory sink, a job into it, and its rows.
	sinkID := "go-out-" + run
	maxRows := int64(1000) // built-in kinds take typed settings (proto3 optional: a pointer)
	_, err = sink.CreateSink(ctx, &hw.CreateSinkRequest{SinkId: sinkID, Sink: &hw.Sink{Kind: "memory",
		Settings:   &hw.Sink_Memory{Memory: &hw.MemorySettings{MaxRows: &maxRows}},
		OutputMode: hw.OutputMode_OUTPUT_MODE_APPEND}})
	check(err)
	job := "jobs/go-" + run
	_, err = processing.CreateJob(ctx, &hw.CreateJobRequest{Job: &hw.Job{Name: job,
		Query:   "SELECT tripId, fare INTO [out] FROM [trips]",
		Inputs:  []*hw.JobInput{{Alias: "trips", Kind: hw.InputKind_INPUT_KIND_STREAM, Hub: "hubs/" + hub, Format: "json"}},
		Outputs: []*hw.JobOutput{{Alias: "out", Sink: "sinks/" + sinkID}}}})
	check(err)
	_, err = processing.StartJob(ctx, &hw.StartJobRequest{Name: job, StartMode: hw.JobStartMode_JOB_START_MODE_EARLIEST})
	check(err)
	var rows []string
	for i := 0; i < 120 && len(rows) < len(events); i++ {
		table, err := sink.ReadTable(ctx, &hw.ReadTableRequest{Name: "sinks/" + sinkID,
			Format: hw.RecordBatchFormat_RECORD_BATCH_FORMAT_JSON_LINES, PageSize: 10000})
		check(err)
		rows = rows[:0]
		for _, line := range strings.Split(string(table.Batch.Data), "\n") {
			var row map[string]interface{}
			if json.Unmarshal([]byte(line), &row) == nil {
				rows = append(rows, fmt.Sprint(row["tripId"]))
			}
		}
		if len(rows) < len(events) {
			time.Sleep(500 * time.Millisecond)
		}
	}
	sort.Strings(rows)
	_, err = processing.StopJob(ctx, &hw.StopJobRequest{Name: job})
	check(err)

	// 6. Errors: a hub that does not exist.
	_, err = ingestion.GetHub(ctx, &hw.GetHubRequest{Name: "hubs/no-such-hub"})
	out, _ := json.Marshal(map[string]interface{}{
		"registry": ns.RegistryAddress, "published": len(events), "read": len(read),
		"schemaId": registered.Properties.Id, "rows": rows, "error": decodeError(err)})
	fmt.Println(string(out))
}
