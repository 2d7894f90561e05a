package fake_test

import (
	"fmt"
	"time"

	"github.com/obdorch/obdorch/connector/fake"
)

// A simulated vehicle answers UDS requests without any gRPC around it.
func ExampleVehicle() {
	v := fake.NewVehicle(fake.VehicleOptions{VIN: "WVWZZZAUZKW123456"})
	req, _ := fake.DecodePayload("22f190")
	responseID, replies, _ := v.Handle(time.Now(), 0x7E0, req)
	fmt.Printf("0x%X %s\n", responseID, fake.EncodePayload(replies[0].Payload))
	// Output: 0x7E8 62F1905756575A5A5A41555A4B57313233343536
}
